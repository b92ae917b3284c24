"""The key registry: for every config key, its type and range, the identities it enters and its value
in records written before it existed (``schema``); what is derived from that (``identities``,
``migrations``)."""
