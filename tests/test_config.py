"""Settings are declared once: config, flags, components, resume check."""

import dataclasses
import json
import os

import pytest
from absl import flags

import maskmodels as mm
from maskmodels.cli import flags as mm_flags
from maskmodels.errors import InputError, SettingError
from maskmodels.training import ExperimentConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
  assert config.data.vocab_size == 500
  assert config.model.head == "pooled"  # the classification task's head
  assert config.model.head_config == {"head_units": [], "head_dropout": 0.2,
                                      "pooling": "max", "pooling_config": {}}
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
    (dict(vocab_size=2), r"--vocab_size=2: expected an integer in \[3, "),
    (dict(head_dropout=1.5), r"--head_dropout=1.5: expected a number in "
     r"\[0, 0.99\]"),
    (dict(truncation="middle"), "--truncation=middle: expected one of head, "
     "tail, both"),
    (dict(encoder="transformer"), "--encoder=transformer: expected one of "
     ".*conv_gru"),
    (dict(batch_size="64"), "--batch_size=64: expected an integer >= 1"),
    (dict(conv_filters=[16.5]), "--conv_filters=16.5: expected "
     "comma-separated integers"),
    (dict(members=["ngram_bag"], ngram_orders=[2, 0]),
     r"--ngram_orders=2,0: expected comma-separated integers in \[1, "),
    (dict(members=["naive_bayes", "bagging"]), "--members=naive_bayes,"
     "bagging: expected comma-separated names, each one of naive_bayes, "
     "ngram_bag"),
    (dict(members=["naive_bayes"], members_config={"ngram_bag": {}}),
     "--members_config has settings of ngram_bag, which --members does "
     "not name"),
    (dict(ngram_buckets=4), "--ngram_buckets is a setting of member "
     "'ngram_bag', which this run does not use; pass settings of the chosen "
     "member with --members_config"),
    (dict(task="tagging", pooling="mean"), "--pooling is a setting of head "
     "'pooled', which this run does not use"),
    (dict(task="test_smoothed", label_smoothing=0.9),
     r"--label_smoothing=0.9: expected a number in \[0, 0.5\]"),
])
def test_bad_values_name_the_setting_and_what_is_allowed(values, message):
  with pytest.raises(InputError, match=message):
    ExperimentConfig.create(**values)


def test_saved_config_round_trips_and_unknown_keys_are_refused(tmp_path):
  config = ExperimentConfig.create(task="test_smoothed", label_smoothing=0.2,
                                   conv_filters=[8, 8], label_names=["a", "b"],
                                   members=["naive_bayes"],
                                   naive_bayes_buckets=1000)
  path = str(tmp_path / "config.json")
  config.save(path)
  assert ExperimentConfig.load(path) == config
  values = json.load(open(path))
  assert values["train"]["task_config"] == {"label_smoothing": 0.2}
  assert values["model"]["members_config"] == {"naive_bayes": {
      "naive_bayes_buckets": 1000, "naive_bayes_orders": [1, 2],
      "naive_bayes_smoothing": 1.0}}
  assert values["version"] == "0.4"
  values["model"]["conv_filters"] = [4]  # not a model setting any more
  with open(path, "w") as f:
    json.dump(values, f)
  with pytest.raises(InputError, match="unknown setting\\(s\\) conv_filters"):
    ExperimentConfig.load(path)


def test_a_model_directory_of_another_version_is_a_one_line_error(
    tmp_path):
  path = str(tmp_path / "config.json")
  ExperimentConfig.create().save(path)
  values = json.load(open(path))
  for version, named in ((None, "0.2"), ("0.2", "0.2"), ("0.3", "0.3"), ("0.5", "0.5")):
    if version is None:
      values.pop("version")
    else:
      values["version"] = version
    with open(path, "w") as f:
      json.dump(values, f)
    with pytest.raises(InputError, match=f"written by maskmodels {named}; "
                       f"this is maskmodels 0.4.0, whose model directories "
                       f"differ. Retrain in a new --model_dir."):
      ExperimentConfig.load(path)


def test_resume_mismatches_name_each_setting_and_both_values():
  before = ExperimentConfig.create(task="test_smoothed", label_smoothing=0.1)
  after = ExperimentConfig.create(task="test_smoothed", label_smoothing=0.3,
                                  kernel_size=3, optimizer="adamw",
                                  learning_rate=0.5)
  assert after.resume_mismatches(before) == [
      "encoder_config.kernel_size: [5] in the model directory, [3] now",
      "task_config.label_smoothing: 0.1 in the model directory, 0.3 now",
      "optimizer: 'adam' in the model directory, 'adamw' now"]


def test_flags_come_from_the_settings_with_their_bounds_and_help(
    parsed_flags):
  config = parsed_flags("--vocab_size=500", "--conv_filters=16,16",
                        "--task=test_smoothed", "--label_smoothing=0.25")
  assert config.data.vocab_size == 500
  assert config.model.encoder_config["conv_filters"] == [16, 16]
  assert config.train.task_config == {"label_smoothing": 0.25}
  vocab = flags.FLAGS["vocab_size"]
  assert vocab.default == 8000 and "Vocabulary size" in vocab.help
  with pytest.raises(SettingError, match=r"--vocab_size=1: expected an "
                     r"integer in \[3, 10000000\]"):
    parsed_flags("--vocab_size=1")
  with pytest.raises(SettingError, match="--truncation=middle: expected "
                     "one of head, tail, both"):
    parsed_flags("--truncation=middle")


def test_a_component_setting_clashing_with_another_is_an_error():
  @dataclasses.dataclass
  class Clash(mm.Settings):
    vocab_size: str = mm.setting("big", "A setting named like a core one.")

  from maskmodels import cli  # pylint: disable=import-outside-toplevel
  from maskmodels.commands import train  # pylint: disable=import-outside-toplevel
  cli.define_flags(train.COMMAND)
  with pytest.raises(ValueError, match="Setting 'vocab_size' of encoder "
                     "'clash' clashes with flag --vocab_size"):
    mm_flags.define_settings_flags(Clash, "encoder 'clash'")


@pytest.mark.parametrize("argv,message", [
    (["--batch_size=-4"], "--batch_size=-4: expected an integer >= 1"),
    (["--max_len=0"], "--max_len=0: expected an integer >= 1"),
    (["--model=transformer"], "--model=transformer: expected one of "
     "sequence"),
    (["--pooling=median"], "--pooling=median: expected one of attention, "
     "last, max, mean"),
    (["--conv_filters=a,b"], r"--conv_filters=a,b: expected comma-separated "
     r"integers in \[1, 16384\]"),
    (['--encoder_config={"conv_filter": 4}'], "conv_filter is not a setting "
     "of encoder 'conv_gru'; its settings: conv_filters, kernel_size"),
    (["--encoder=unmasked_conv_gru", "--strides=2"], "--strides is a "
     "setting of encoder 'conv_gru', which this run does not use"),
    (["--task=tagging", "--tokenizer=wordpiece"], None),
])
def test_bad_flags_name_the_flag_and_value(parsed_flags, argv, message):
  if message is None:  # valid flags; word lists refuse them when read
    config = parsed_flags(*argv)
    with pytest.raises(SettingError, match="--tokenizer=wordpiece: word "
                       "lists need --tokenizer=word"):
      mm.INPUT_KINDS.get("words").validate(config)
    return
  with pytest.raises((InputError, flags.Error), match=message):
    parsed_flags(*argv)


def test_an_unknown_strategy_and_a_missing_import_are_named():
  from maskmodels import cli, training
  with pytest.raises(InputError, match="strategy 'horovod' is not "
                     "registered; choose one of default, mirrored"):
    training.get_strategy("horovod")
  with pytest.raises(SettingError, match="--import=no_such_module: no "
                     "module named 'no_such_module'; expected a module in "
                     "the working directory"):
    cli.import_plugins(["no_such_module"])


@pytest.mark.parametrize("flagfile", sorted(
    name for name in os.listdir(os.path.join(ROOT, "configs"))
    if name.endswith(".flags")))
def test_checked_in_flagfiles_are_valid(parsed_flags, flagfile):
  config = parsed_flags(f"--flagfile={os.path.join(ROOT, 'configs', flagfile)}")
  assert config.data.data_format in ("aclimdb", "cmudict", "conllu", "ts")
