"""Small-input CNNs of the CIFAR distillation benchmarks (RepDistiller, mdistiller): no ImageNet stem.

timm's ResNet, VGG and MobileNetV2 start with an ImageNet stem (a stride-2 7x7 convolution and
max-pooling, or VGG's 4096-wide head), which turns a 28-32 px image into 7-8 px before the first
stage; these keep the full resolution in the first stage, as the papers' CIFAR models do. Global
average pooling before the classifier makes them work for any input size (28 px Fashion-MNIST, 32 px
CIFAR). Module names follow the papers' code, so tap aliases point to the same layers.
"""
