# Build tools and the JSON parser.
# libcjson: config.json, safetensors headers and norm_stats.json are JSON; cJSON is small, in Debian,
# and reports the byte where parsing stopped, which our error messages need.
DEBS   += build-essential libcjson-dev
LDLIBS += -lcjson
