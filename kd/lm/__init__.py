"""Language-model pieces around training: the student's own samples (on-policy distillation), the
teacher's generations as a training set (sequence-level KD), and what an LM run reports besides its
metrics (bits per byte, generations side by side, generation latency)."""
