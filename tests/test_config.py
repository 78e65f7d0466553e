"""Settings are declared once: config, flags, components, resume check."""

import dataclasses
import json

import pytest
from absl import flags

import maskmodels as mm
from maskmodels import flags as mm_flags
from maskmodels.errors import InputError
from maskmodels.training import ExperimentConfig


@mm.register_task("test_smoothed")
class SmoothedTask(mm.ClassificationTask):
  """A research objective with a setting of its own."""

  @dataclasses.dataclass
  class Config(mm.Settings):
    label_smoothing: float = mm.setting(
        0.1, "Label smoothing of the training loss.", lower=0.0, upper=0.5,
        resume=True)


@mm.register_encoder("test_plain")
class PlainEncoder(mm.Encoder):
  """An encoder without a Config: its settings are its parameters."""

  def __init__(self, units=4, **kwargs):
    super().__init__(**kwargs)
    self.units = units

  def call(self, inputs, mask=None, training=None):
    return inputs, mask


def test_create_groups_settings_and_fills_component_settings():
  config = ExperimentConfig.create(vocab_size=500, conv_filters=[16],
                                   head_dropout=0.2)
  assert config.data.vocab_size == 500 and config.model.head_dropout == 0.2
  encoder = config.model.encoder_config
  assert encoder["conv_filters"] == [16] and encoder["gru_units"] == [64]
  assert config.train.task_config == {}  # classification has no settings
  json_wins = ExperimentConfig.create(conv_filters=[16],
                                      encoder_config={"conv_filters": [8]})
  assert json_wins.model.encoder_config["conv_filters"] == [8]


def test_only_the_chosen_components_settings_are_used_or_recorded():
  config = ExperimentConfig.create(encoder="test_plain",
                                   encoder_config={"units": 8})
  assert config.model.encoder_config == {"units": 8}
  with pytest.raises(InputError, match="--encoder_config: size is not a "
                     "setting of encoder 'test_plain'; its settings: units"):
    ExperimentConfig.create(encoder="test_plain",
                            encoder_config={"size": 8})
  with pytest.raises(InputError, match="--conv_filters is a setting of "
                     "encoder 'conv_gru', which this run does not use"):
    ExperimentConfig.create(encoder="test_plain", conv_filters=[8])
  with pytest.raises(InputError, match="Unknown setting\\(s\\): vocab"):
    ExperimentConfig.create(vocab=3)


@pytest.mark.parametrize("values,message", [
    (dict(vocab_size=2), "vocab_size=2: must be >= 3"),
    (dict(head_dropout=1.5), "head_dropout=1.5: must be <= 0.99"),
    (dict(truncation="middle"), "truncation='middle': choose one of head"),
    (dict(encoder="transformer"), "encoder 'transformer' is not registered"),
    (dict(batch_size="64"), "batch_size='64': expected an integer"),
    (dict(conv_filters=[16.5]), "conv_filters=\\[16.5\\]: expected a list "
     "of int"),
    (dict(ngram_orders=[2, 0]), "ngram_orders=\\[2, 0\\]: must be >= 1"),
    (dict(task="test_smoothed", label_smoothing=0.9),
     "label_smoothing=0.9: must be <= 0.5"),
])
def test_bad_values_name_the_setting_and_what_is_allowed(values, message):
  with pytest.raises(InputError, match=message):
    ExperimentConfig.create(**values)


def test_saved_config_round_trips_and_unknown_keys_are_refused(tmp_path):
  config = ExperimentConfig.create(task="test_smoothed", label_smoothing=0.2,
                                   conv_filters=[8, 8], class_names=["a", "b"])
  path = str(tmp_path / "config.json")
  config.save(path)
  assert ExperimentConfig.load(path) == config
  values = json.load(open(path))
  assert values["train"]["task_config"] == {"label_smoothing": 0.2}
  values["model"]["conv_filters"] = [4]  # not a model setting any more
  with open(path, "w") as f:
    json.dump(values, f)
  with pytest.raises(InputError, match="unknown setting\\(s\\) conv_filters"):
    ExperimentConfig.load(path)


def test_resume_mismatches_name_each_setting_and_both_values():
  before = ExperimentConfig.create(task="test_smoothed", label_smoothing=0.1)
  after = ExperimentConfig.create(task="test_smoothed", label_smoothing=0.3,
                                  kernel_size=3, optimizer="adamw",
                                  learning_rate=0.5)
  assert after.resume_mismatches(before) == [
      "encoder_config.kernel_size: 5 in the model directory, 3 now",
      "task_config.label_smoothing: 0.1 in the model directory, 0.3 now",
      "optimizer: 'adam' in the model directory, 'adamw' now"]


@pytest.fixture
def parsed_flags():
  """Defines the flags once and parses a command line; restores after."""
  if "vocab_size" not in flags.FLAGS:
    mm_flags.define_runtime_flags()
    mm_flags.define_experiment_flags()

  def parse(*argv):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", *argv])
    return mm_flags.experiment_config_from_flags()

  yield parse
  flags.FLAGS.unparse_flags()


def test_flags_come_from_the_settings_with_their_bounds_and_help(
    parsed_flags):
  config = parsed_flags("--vocab_size=500", "--conv_filters=16,16",
                        "--task=test_smoothed", "--label_smoothing=0.25")
  assert config.data.vocab_size == 500
  assert config.model.encoder_config["conv_filters"] == [16, 16]
  assert config.train.task_config == {"label_smoothing": 0.25}
  vocab = flags.FLAGS["vocab_size"]
  assert vocab.default == 8000 and "Vocabulary size" in vocab.help
  with pytest.raises(flags.IllegalFlagValueError):
    flags.FLAGS(["prog", "--vocab_size=1"])
  assert flags.FLAGS["truncation"].parser.enum_values == ["head", "tail",
                                                          "both"]


def test_a_component_setting_clashing_with_another_is_an_error():
  @dataclasses.dataclass
  class Clash(mm.Settings):
    vocab_size: str = mm.setting("big", "A setting named like a core one.")

  if "vocab_size" not in flags.FLAGS:
    mm_flags.define_experiment_flags()
  with pytest.raises(ValueError, match="Setting 'vocab_size' of encoder "
                     "'clash' clashes with flag --vocab_size"):
    mm_flags.define_settings_flags(Clash, "encoder 'clash'")
