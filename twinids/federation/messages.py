"""The keys of what server and clients send each other, beside Flower's own (`arrays`, `config`, `metrics`)."""

CONFIG_KEY = "twinids-config"  # the federation's resolved config as YAML, in every message's config record
CLIENT_KEY = "twinids-client"  # a client's name, in its answer to the server's first query
DP_STATE_KEY = "twinids-dp-state"  # a client's DP-SGD accountant and sampler, in its node's Flower state
CLIPPING_NORM_KEY = "clipping_norm"  # what Flower's client-side clipping wrapper sends (flwr.supercore)

# The run config `flwr run` hands the deployed ServerApp (deployment.py writes it, server_app.py reads it).
CONFIG_YAML_KEY = "config-yaml"  # the job's resolved config as YAML
OVERRIDES_KEY = "overrides-json"  # the overrides that composed it
TAGS_KEY = "tags-json"  # extra tags for its parent run (a sweep's)
