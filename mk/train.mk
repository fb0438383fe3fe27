# Training the small checkpoints of tests/data (tools/train/): not part of the build, the tests or CI.
# python3-torch (Debian 12: 1.13.1, CPU): autograd and Adam for tools/train/train_tiny_smooth.py,
#   which trained tests/data/pi0_tiny_smooth/. Only that script imports it (the tests read the
#   committed checkpoint), so it is installed by `make train-deps` (as root) instead of being in DEBS. Debian's /usr/bin/python3 runs it, as tests/run.sh does.
# libopenblas0-pthread: Debian's torch calls the system BLAS (libblas.so.3); the reference BLAS it
#   gets otherwise made a training step ~5x slower. Installing it switches that alternative.
TRAIN_DEBS := python3-torch python3-numpy libopenblas0-pthread

.PHONY: train-deps train-smooth
train-deps:
	@$(call MISSING_DEBS,$(TRAIN_DEBS)); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	  else echo "training needs PyTorch; run: sudo apt-get install -y$$missing"; exit 1; fi; fi

# Re-makes tests/data/pi0_tiny_smooth/ (minutes of CPU; the README there gives seed, steps and loss).
train-smooth: train-deps all
	/usr/bin/python3 tools/train/train_tiny_smooth.py --out tests/data/pi0_tiny_smooth --pi0 $(BUILD)/pi0
