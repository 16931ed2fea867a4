# `make test`: create .venv when missing, install the pinned requirements and the package (editable), run the tests.
# `make test-fast`: the same without the tests marked slow (pytest.ini), for a quick check while editing.
# `make demo`: the whole pipeline on a generated corpus (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: test test-fast demo demo-analysis

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# ---- make demo: the paper's pipeline end to end on a generated corpus (docs/demo.md) ------------
# Each step is a file target, so a rerun reuses what is done (delete demo/ and the *demo* outputs to
# start again). The number of epochs is read from the config, its one home.
DEMO := demo
DEMO_DATA := $(DEMO)/data
DEMO_CONFIG := configs/demo.json
# The follow-up paper's contextual model (docs/contextual.md), trained without the held-out tags.
DEMO_CONTEXTUAL_CONFIG := configs/demo_contextual.json
config_key = $(shell $(PY) -c "import json; print(json.load(open('$(1)'))['$(2)'])")
DEMO_EXPERIMENT = $(call config_key,$(DEMO_CONFIG),experiment_name)
DEMO_EPOCHS = $(call config_key,$(DEMO_CONFIG),epochs)
DEMO_CKPT = saved_models/$(DEMO_EXPERIMENT)/audio_encoder_epoch_$(DEMO_EPOCHS).pt
DEMO_CONTEXTUAL = saved_models/$(call config_key,$(DEMO_CONTEXTUAL_CONFIG),experiment_name)
DEMO_CONTEXTUAL_CKPT = $(DEMO_CONTEXTUAL)/audio_encoder_epoch_$(call config_key,$(DEMO_CONTEXTUAL_CONFIG),epochs).pt
DEMO_HELD_OUT = $(call config_key,$(DEMO_CONTEXTUAL_CONFIG),train_dataset_file)
DEMO_RESULTS := $(DEMO)/results/performances.json
DEMO_UNTRAINED := $(DEMO_DATA)/untrained/config.json
DEMO_SEARCH := $(DEMO)/results/search.json
DEMO_VAL = $(call config_key,$(DEMO_CONFIG),validation_dataset_file)
DEMO_ID2TAG = $(call config_key,$(DEMO_CONFIG),id2tag_file)
DEMO_ANALYSIS := $(DEMO)/analysis

$(DEMO_DATA)/demo_data.json: | $(STAMP)
	$(PY) make_demo_data.py --out $(DEMO_DATA)

hdf5_ds/spec_tags_demo: $(DEMO_DATA)/demo_data.json
	$(PY) create_dataset.py --audio-dir $(DEMO_DATA)/corpus/audio --tags-csv $(DEMO_DATA)/corpus/tags.csv --name demo

$(DEMO_UNTRAINED): hdf5_ds/spec_tags_demo
	$(PY) make_demo_data.py --out $(DEMO_DATA) --quiet --untrained-model hdf5_ds/spec_tags_demo

# The same build without the held-out tags (coala/demo/data.py HELD_OUT_TAGS): the contextual model's training files.
$(DEMO_HELD_OUT): hdf5_ds/spec_tags_demo
	$(PY) make_demo_data.py --out $(DEMO_DATA) --quiet --held-out hdf5_ds/spec_tags_demo

# Retrieval in the shared space on the validation set (which has the held-out tags): the trained pairs
# against the untrained one; the contextual model answers for the held-out tags through its word vectors.
$(DEMO_SEARCH): $(DEMO_UNTRAINED) $(DEMO_CKPT) $(DEMO_CONTEXTUAL_CKPT)
	$(PY) search.py evaluate --model saved_models/$(DEMO_EXPERIMENT) $(DEMO_CONTEXTUAL) $(DEMO_DATA)/untrained --dataset $(DEMO_VAL) --out $@ --plot $(DEMO)/results/search_pr.png

demo: $(STAMP) $(DEMO_UNTRAINED) $(DEMO_HELD_OUT)
	$(PY) train_dual_ae.py $(DEMO_CONFIG)
	$(PY) train_dual_ae.py $(DEMO_CONTEXTUAL_CONFIG)
	$(MAKE) --no-print-directory $(DEMO_SEARCH)
	$(PY) encode.py --quiet --model saved_models/$(DEMO_EXPERIMENT) --dataset all --data-dir $(DEMO_DATA)
	$(PY) encode.py --quiet --model $(DEMO_CONTEXTUAL) --dataset all --data-dir $(DEMO_DATA)
	$(PY) encode.py --quiet --model $(DEMO_DATA)/untrained --dataset all --data-dir $(DEMO_DATA)
	$(PY) encode.py --quiet --features mfcc --dataset all --data-dir $(DEMO_DATA)
	$(PY) classify.py --data-dir $(DEMO_DATA) --runs 3 --jobs 2 --nsynth-selection $(DEMO_DATA)/json/nsynth_selected_sounds_per_class.json --out $(DEMO_RESULTS)
	@$(MAKE) --no-print-directory demo-analysis
	@echo; echo "Pictures made:"; ls -1 runs/$(DEMO_EXPERIMENT)/*.png runs/$(notdir $(DEMO_CONTEXTUAL))/*.png $(DEMO)/results/*.png $(DEMO_ANALYSIS)/*.png

# The embedding analysis (docs/analysis.md) on the demo's validation set; part of `make demo`, which
# makes its inputs. The trained and the untrained encoder are measured on one footing, held out.
demo-analysis:
	$(PY) analyse.py descriptors --quiet --audio-dir $(DEMO_DATA)/corpus/audio --dataset $(DEMO_VAL) --out $(DEMO_ANALYSIS)/descriptors.json
	$(PY) analyse.py cca --model $(DEMO_CKPT) untrained=$(DEMO_DATA)/untrained/audio_encoder_epoch_0.pt --dataset $(DEMO_VAL) --descriptors $(DEMO_ANALYSIS)/descriptors.json --out $(DEMO_ANALYSIS)
	$(PY) analyse.py maps --model $(DEMO_CKPT) --dataset $(DEMO_VAL) --out $(DEMO_ANALYSIS)
