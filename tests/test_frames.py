"""Frame inputs: readers, statistics, the frame backbone's padding
invariance (random and NaN pad steps, both layouts, batch-mates), and runs
through training, evaluation, prediction and the SavedModel."""

import dataclasses
import gzip
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import env, write_ts
import maskmodels as mm
from maskmodels import data, export, testing, training
from maskmodels.errors import InputError

CHANNELS = 3


def synthetic_series(count, seed=0, min_len=4, max_len=40):
  """``(series, labels)``: class "up" rises on channel 0, "down" falls;
  lengths differ; the other channels are noise around large offsets (so
  standardizing matters)."""
  rng = np.random.default_rng(seed)
  series, labels = [], []
  for index in range(count):
    length = int(rng.integers(min_len, max_len + 1))
    label = ["down", "up"][index % 2]
    slope = 1.0 if label == "up" else -1.0
    frames = rng.normal(size=(length, CHANNELS)).astype(np.float32) * 0.3
    frames[:, 0] += slope * np.linspace(0, 3, length)
    frames[:, 1] += 50.0
    series.append(frames)
    labels.append(label)
  return series, labels


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """An archive-layout folder ``Tiny/Tiny_TRAIN.ts``, ``Tiny_TEST.ts``."""
  root = tmp_path_factory.mktemp("ts") / "Tiny"
  root.mkdir()
  write_ts(root / "Tiny_TRAIN.ts", *synthetic_series(120, seed=1))
  write_ts(root / "Tiny_TEST.ts", *synthetic_series(60, seed=2))
  return str(root)


# ---- readers ---------------------------------------------------------------


def test_ts_reader_reads_unequal_multichannel_series_and_their_labels(
    folder, tmp_path):
  train = data.read_examples("ts", folder, "train")
  series, labels = synthetic_series(120, seed=1)
  assert train.kind.name == "frames" and len(train) == 120
  assert [s.shape for s in train.texts] == [s.shape for s in series]
  np.testing.assert_allclose(train.texts[7], series[7], rtol=1e-5)
  assert train.labels == labels
  assert data.read_examples("ts", folder, "test").source.endswith(
      "Tiny_TEST.ts")
  # A single file reads whole; gzip too.
  path = write_ts(tmp_path / "one.ts.gz", series[:3], labels[:3])
  assert len(data.read_examples("ts", path)) == 3
  with pytest.raises(data.UnknownSplit, match="expected Tiny_DEV.ts"):
    data.read_examples("ts", folder, "dev")


@pytest.mark.parametrize("line,message", [
    ("1,2,?:3,4,5:6,7,8:up", "value 3 is a missing value \\('\\?'\\); fill "
     "missing values before training \\(carry the last value forward"),
    ("1,2,NaN:3,4,5:6,7,8:up", "value 3 is a missing value"),
    ("1,2,inf:3,4,5:6,7,8:up", "value 3 is inf; expected a finite number"),
    ("1,2,x:3,4,5:6,7,8:up", "value 3 is 'x', not a number"),
    ("1,2,3:4,5,6:up", "2 channel\\(s\\); the header says 3"),
    ("1,2,3:4,5:6,7,8:up", "channels of \\[2, 3\\] values; expected one "
     "length"),
    ("1,2,3:4,5,6:7,8,9:sideways", "label 'sideways', which @classLabel "
     "does not list"),
    (":::up", "an empty series"),
])
def test_bad_ts_lines_are_one_line_errors_naming_file_and_line(
    tmp_path, line, message):
  path = write_ts(tmp_path / "bad.ts", [np.ones([2, 3], np.float32)],
                  ["up"])
  with open(path) as f:
    text = f.read().replace("@classLabel true up", "@classLabel true down up")
  with open(path, "w") as f:
    f.write(text + line + "\n")
  with pytest.raises(InputError, match=f"bad.ts:11.*{message}|"
                     f"{message}") as error:
    data.read_examples("ts", path)
  assert "bad.ts" in str(error.value) and "\n" not in str(error.value)


def test_jsonl_frames_and_npz_read_as_frames(tmp_path):
  series, labels = synthetic_series(5, seed=3)
  path = tmp_path / "frames.jsonl"
  path.write_text("".join(json.dumps({"frames": s.tolist(), "label": l}) + "\n"
                          for s, l in zip(series, labels)))
  read = data.read_examples("jsonl", str(path))
  assert read.kind.name == "frames" and read.labels == labels
  np.testing.assert_allclose(read.texts[2], series[2], rtol=1e-6)
  for record, message in (
      ({"frames": [[1, 2, 3], [1, 2]], "label": "up"}, "frame 2 has 2 "
       "channel\\(s\\); expected 3"),
      ({"frames": [[1, 2, float("nan")]], "label": "up"}, "is nan; expected "
       "a finite number: fill missing values"),
      ({"frames": [[1, "a", 3]], "label": "up"}, "'a', not a number"),
      ({"frames": [], "label": "up"}, "an empty series")):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(record) + "\n")
    with pytest.raises(InputError, match=f"bad.jsonl:1: .*{message}"):
      data.read_examples("jsonl", str(bad))
  # .npz: padded values, their lengths (NaN past a length is padding), and
  # a label per series or per frame.
  width = max(len(s) for s in series)
  values = np.full([5, width, CHANNELS], np.nan, np.float32)
  for row, s in enumerate(series):
    values[row, :len(s)] = s
  npz = str(tmp_path / "frames.npz")
  np.savez(npz, values=values, lengths=[len(s) for s in series],
           labels=np.array(labels))
  read = data.read_examples("npz", npz)
  assert read.labels == labels and [len(s) for s in read.texts] == [
      len(s) for s in series]
  values[1, 0, 2] = np.inf
  np.savez(npz, values=values, lengths=[len(s) for s in series],
           labels=np.array(labels))
  with pytest.raises(InputError, match="series 2, frame 1, channel 3 is inf"):
    data.read_examples("npz", npz)


def test_frame_files_that_cannot_be_read_whole_are_one_line_errors(
    tmp_path):
  """A value float32 cannot hold, a truncated or non-gzip file, a text
  file or a truncated archive as .npz, lengths that are not integers: one
  InputError naming the file (and the line or series), no traceback."""
  series, labels = synthetic_series(4, seed=3)
  cases = {}
  for name, value in (("ts", "1e39"), ("jsonl", 1e39)):
    path = tmp_path / f"huge.{name}"
    if name == "ts":
      write_ts(path, series, labels)
      text = path.read_text().splitlines()
      fields = text[-1].split(":")
      fields[1] = value + fields[1][fields[1].index(","):]
      path.write_text("\n".join(text[:-1] + [":".join(fields)]) + "\n")
    else:
      rows = series[0].tolist()
      rows[2][1] = value
      path.write_text(json.dumps({"frames": rows, "label": "up"}) + "\n")
    cases[name] = (path, r"huge\.\w+:\d+.*1e\+39, beyond float32's range")
  whole = tmp_path / "frames.jsonl"
  whole.write_text("".join(json.dumps({"frames": s.tolist(), "label": l}) +
                           "\n" for s, l in zip(series, labels)))
  packed = gzip.compress(whole.read_bytes())
  truncated = tmp_path / "truncated.jsonl.gz"
  truncated.write_bytes(packed[:len(packed) // 2])
  cases["truncated gzip"] = (truncated, "truncated.jsonl.gz: not whole gzip "
                             "data")
  plain = tmp_path / "plain.jsonl.gz"
  plain.write_bytes(whole.read_bytes())
  cases["not gzip"] = (plain, "plain.jsonl.gz: not whole gzip data")
  npz = tmp_path / "frames.npz"
  values = np.zeros([4, 9, CHANNELS], np.float32)
  np.savez(npz, values=values, lengths=[9, 3, 4, 5], labels=labels)
  cut = tmp_path / "cut.npz"
  cut.write_bytes(npz.read_bytes()[:-200])
  cases["truncated npz"] = (cut, "cut.npz: (a damaged .npz archive|not a "
                            "NumPy .npz archive)")
  text = tmp_path / "text.npz"
  text.write_text("values,lengths\n1,2\n")
  cases["text as npz"] = (text, "text.npz: not a NumPy .npz archive")
  huge = tmp_path / "huge.npz"
  big = values.astype(np.float64)
  big[2, 1, 0] = 1e39
  np.savez(huge, values=big, lengths=[9, 3, 4, 5], labels=labels)
  cases["huge npz"] = (huge, "series 3, frame 2, channel 1 is 1e\+39")
  floats = tmp_path / "floats.npz"
  np.savez(floats, values=values, lengths=[9.0, 2.5, 4.0, 5.0],
           labels=labels)
  cases["float lengths"] = (floats, "lengths of shape \(4,\) and type "
                            "float64; expected integers")
  formats = {".ts": "ts", ".gz": "jsonl", ".jsonl": "jsonl", ".npz": "npz"}
  for name, (path, message) in cases.items():
    with pytest.raises(InputError, match=message) as error:
      data.read_examples(formats[os.path.splitext(str(path))[1]], str(path))
    assert "\n" not in str(error.value), name


def test_channel_statistics_count_only_the_frames_a_run_keeps():
  series = [np.arange(10, dtype=np.float32)[:, None] * [1.0, 2.0, 0.0]]
  kind = mm.INPUT_KINDS.get("frames")
  for truncation, kept in (("head", [0, 1, 2, 3]), ("tail", [6, 7, 8, 9]),
                           ("both", [0, 1, 8, 9])):
    config = training.ExperimentConfig.create(max_len=4,
                                              truncation=truncation)
    statistics = kind.fit(config.data, data.Examples(series, ["a"]))
    assert statistics.frames == 4
    np.testing.assert_allclose(statistics.mean[:2], [np.mean(kept),
                                                     2 * np.mean(kept)])
  statistics = kind.fit(training.ExperimentConfig.create().data,
                        data.Examples(series, ["a"]))
  assert statistics.frames == 10  # no --max_len: every frame


# ---- the frame backbone -------------------------------------------------


def frame_model(head="pooled", strides=1, pool_size=2, dtype=None, **extra):
  """A frame classifier (or per-frame tagger) with small settings."""
  encoder = dict(conv_filters=[8, 8], kernel_size=[3], strides=[strides],
                 pool_size=[pool_size], gru_units=[6], dropout=0.0)
  backbone = mm.FrameBackbone(
      CHANNELS, channel_mean=[0.0, 50.0, 0.0], channel_std=[1.0, 0.3, 1.0],
      encoder_config=encoder, dtype=dtype, **extra)
  head_layer = (mm.PooledHead(3, pooling="attention", head_dropout=0.0,
                             dtype=dtype)
                if head == "pooled" else mm.PerStepHead(3, head_dropout=0.0,
                                                        dtype=dtype))
  return mm.SequenceModel(backbone, head_layer, dtype=dtype)


@pytest.mark.parametrize("options", [
    dict(), dict(strides=2, pool_size=2), dict(frame_projection=5),
    dict(standardize="series")],
                         ids=["pooled", "strided", "projected", "series"])
def test_a_frame_model_passes_the_battery(options):
  """Random and NaN pad steps, left and right padding, batch-mates, zero
  gradient at pad frames, a config round trip, empty series and an empty
  batch, the dtype policy."""
  series = testing.random_sequences(7, 12, dim=CHANNELS, seed=4)
  testing.assert_layer(lambda **kw: frame_model(**options, **kw), series)


def test_a_per_frame_model_is_padding_invariant():
  series = testing.random_sequences(6, 10, dim=CHANNELS, seed=5)
  testing.assert_padding_invariant(
      frame_model("per_step", pool_size=1), series)


def test_the_checker_catches_a_frame_backbone_that_reads_pad_frames():
  """The bug the property guards against, planted: a backbone that zeroes
  pad frames but hands its encoder no mask (the encoder reads them)."""

  class Leaky(mm.FrameBackbone):
    def call(self, inputs, training=None):
      frames = inputs["frames"]
      mask = (tf.cast(inputs["mask"], tf.bool) if "mask" in inputs else
              tf.sequence_mask(inputs["lengths"], tf.shape(frames)[1]))
      x = mm.masking.apply_mask(frames, mask)
      steps, _ = self.encoder(x, mask=None, training=training)
      steps_mask = mask[:, ::2]  # pool_size 2 (the default)
      return {"steps": steps, "mask": steps_mask, "token_mask": mask,
              "order": tf.argsort(tf.cast(~mask, tf.int32), axis=1,
                                  stable=True)}

  model = mm.SequenceModel(Leaky(
      CHANNELS, channel_mean=[1.0, 50.0, 0.0], channel_std=[1.0, 0.3, 1.0],
      encoder_config=dict(conv_filters=[8], kernel_size=[3], gru_units=[4],
                          dropout=0.0)), mm.PooledHead(3))
  failures = testing.check_padding_invariance(
      model, testing.random_sequences(5, 8, dim=CHANNELS, seed=6))
  assert any(f.check.startswith("batched") for f in failures)


# ---- runs -----------------------------------------------------------------


TINY = dict(embedding_dim=8, conv_filters=[8], kernel_size=[3], gru_units=[8],
            batch_size=16, steps_per_loop=5, warmup_steps=2,
            checkpoint_every_steps=10, dropout=0.0, head_dropout=0.0)


@pytest.fixture(scope="module")
def frame_run(folder, tmp_path_factory):
  """A frame classifier trained on the archive-layout folder."""
  model_dir = str(tmp_path_factory.mktemp("frames") / "run")
  config = training.ExperimentConfig.create(
      data_format="ts", data_path=folder, train_steps=30, **{
          k: v for k, v in TINY.items() if k != "embedding_dim"})
  summary = training.train_and_evaluate(config, model_dir,
                                        tf.distribute.get_strategy())
  return model_dir, summary


def test_a_frame_run_learns_keeps_its_statistics_and_resumes(frame_run,
                                                             folder):
  model_dir, summary = frame_run
  assert summary["test_examples"] == 60
  assert summary["test_accuracy"] > 0.8  # up against down
  saved = training.ModelDirectory(model_dir).load_config()
  assert saved.data.inputs == "frames" and saved.model.backbone == "frames"
  # The statistics are the training split's real frames', no padding.
  splits = training.read_splits(saved.data, saved.train.seed)
  frames = np.concatenate(splits.train.texts)
  with open(os.path.join(model_dir, "channel_statistics.json")) as f:
    statistics = json.load(f)
  np.testing.assert_allclose(statistics["mean"], frames.mean(0), rtol=1e-5)
  np.testing.assert_allclose(statistics["std"], frames.std(0), rtol=1e-4)
  assert statistics["frames"] == len(frames)
  # A resume reads them back (checked) and continues.
  resumed = training.train_and_evaluate(saved.replace(train_steps=35),
                                        model_dir,
                                        tf.distribute.get_strategy())
  assert resumed["steps"] == 35
  with open(os.path.join(model_dir, "channel_statistics.json")) as f:
    assert json.load(f) == statistics


def test_frames_serve_in_process_and_from_a_fresh_process(frame_run, folder,
                                                          tmp_path):
  """Predict and the SavedModel (frames [batch, time, channels], lengths
  [batch]) agree; NaN past a series' length changes nothing."""
  model_dir, summary = frame_run
  run = training.load_trained(model_dir)
  test = data.read_examples("ts", folder, "test")
  rows = run.server().predict(test.texts[:9])
  metrics = training.evaluate(model_dir, test)
  assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"],
                                              abs=1e-6)
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(model_dir, export_dir)
  series = test.texts[:9]
  width = max(len(s) for s in series) + 4
  frames = np.full([len(series), width, CHANNELS], np.nan, np.float32)
  for row, s in enumerate(series):
    frames[row, :len(s)] = s
  # A bad request gets an error naming what is wrong, never an answer
  # that looks valid: one length too few, NaN or Inf in a real frame, a
  # length past the time axis, frames without their channel axis.
  script = ("import json, sys\nimport numpy as np, tensorflow as tf\n"
            "model = tf.saved_model.load(sys.argv[1])\n"
            "serve = model.signatures['serving_default']\n"
            "frames = np.array(json.loads(sys.argv[2]), np.float32)\n"
            "lengths = json.loads(sys.argv[3])\n"
            "out = serve(frames=tf.constant(frames), lengths=tf.constant("
            "lengths))\n"
            "print(json.dumps(out['probabilities'].numpy().tolist()))\n"
            "meta = json.loads(model.metadata().numpy())\n"
            "print(json.dumps([meta['requires'], meta['input_kind'], "
            "sorted(m for m in sys.modules if m.startswith(('maskmodels', "
            "'tensorflow_text')))]))\n"
            "nan, inf = frames.copy(), frames.copy()\n"
            "nan[1, 0, 2] = np.nan\n"
            "inf[3, lengths[3] - 1, 0] = np.inf\n"
            "bad = {'a length missing': (frames, lengths[:-1]),\n"
            "       'NaN in a real frame': (nan, lengths),\n"
            "       'Inf in a real frame': (inf, lengths),\n"
            "       'a length past the frames': (frames, [99] + lengths[1:]),"
            "\n       'frames of rank 2': (frames[:, :, 0], lengths)}\n"
            "errors = {}\n"
            "for name, (f, l) in bad.items():\n"
            "  try:\n"
            "    serve(frames=tf.constant(f), lengths=tf.constant(l))\n"
            "    errors[name] = 'answered'\n"
            "  except (tf.errors.InvalidArgumentError, ValueError, "
            "TypeError) as e:\n"
            "    errors[name] = str(e)\n"
            "print(json.dumps(errors))\n")
  result = subprocess.run(
      [sys.executable, "-c", script, export_dir,
       json.dumps(np.where(np.isnan(frames), None, frames).tolist()),
       json.dumps([len(s) for s in series])], capture_output=True, text=True,
      env=env(), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  probabilities, meta, errors = (json.loads(line) for line in
                                 result.stdout.strip().splitlines()[-3:])
  np.testing.assert_allclose(probabilities, [r["probabilities"] for r in rows],
                             atol=1e-5)
  assert meta == [["tensorflow"], "frames", []]
  assert "lengths must have one entry per row of frames" in errors[
      "a length missing"]
  for name, row in (("NaN in a real frame", 1), ("Inf in a real frame", 3)):
    assert re.search(r"frames hold NaN or Inf in a real frame .* rows\] "
                     rf"\[{row}\]", errors[name]), errors[name]
  assert "a length exceeds the time axis of frames" in errors[
      "a length past the frames"], errors["a length past the frames"]
  assert errors["frames of rank 2"] != "answered"
  print(errors)


def test_predict_refuses_series_of_another_channel_count_in_one_line(
    frame_run, tmp_path, capfd):
  """From a model directory and from its SavedModel alike."""
  # pylint: disable=import-outside-toplevel
  from maskmodels import cli
  from maskmodels.commands import predict
  model_dir, _ = frame_run
  export_dir = str(tmp_path / "exported")
  export.export_saved_model(model_dir, export_dir)
  series, labels = synthetic_series(2, seed=1)
  path = write_ts(tmp_path / "two.ts", [s[:, :2] for s in series], labels)
  for target in (model_dir, export_dir):
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_:
      cli.run(predict.COMMAND, ["predict", f"--model_dir={target}",
                                "--data_format=ts", f"--data_path={path}"])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 1 and "Traceback" not in err, err[-2000:]
    assert lines == ["error: The model refused inputs 1 to 2: frames "
                     "float32 [2, 22, 2]; the model takes float32 [batch, "
                     "time, 3]."], err[-2000:]


def test_a_label_per_frame_tags_frames_and_blanks_past_their_length(
    tmp_path):
  """Tagging reads frames too: a label per frame, from JSON Lines."""
  series, _ = synthetic_series(60, seed=7, min_len=3, max_len=12)
  path = tmp_path / "tagged.jsonl"
  with open(path, "w") as f:
    for s in series:
      tags = ["hi" if v > 0 else "lo" for v in s[:, 0]]
      f.write(json.dumps({"frames": s.tolist(), "label": tags}) + "\n")
  config = training.ExperimentConfig.create(
      task="tagging", data_format="jsonl", data_path=str(path),
      validation_fraction=0.2, train_steps=20, **{
          k: v for k, v in TINY.items() if k != "embedding_dim"})
  model_dir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, model_dir,
                                        tf.distribute.get_strategy())
  assert summary["best_validation_token_accuracy"] > 0.6
  run = training.load_trained(model_dir)
  rows = run.server().predict(series[:4] + [np.zeros([0, CHANNELS],
                                                     np.float32)])
  for row, s in zip(rows, series[:4] + [np.zeros([0, CHANNELS])]):
    assert row["lengths"] == len(s)
    assert set(row["tags"][:len(s)].tolist()) <= {b"hi", b"lo"}
    assert set(row["tags"][len(s):].tolist()) <= {b""}
    assert set(row["tag_ids"][len(s):].tolist()) <= {-1}


def test_random_crops_are_windows_of_each_series_drawn_per_batch(tmp_path):
  """Training crops cut each series to one contiguous window of at least
  the fraction of its frames (a per-frame label cut with it), drawn anew
  for every batch, the same when a run resumes mid-way; evaluation reads
  whole series."""
  rng = np.random.default_rng(0)
  series = [np.arange(n, dtype=np.float32)[:, None] + 1000.0 * i
            for i, n in enumerate(rng.integers(1, 30, size=24))]
  series[3] = np.zeros([0, 1], np.float32)
  labels = [(s[:, 0] + 0.5).astype(np.int32) for s in series]
  examples = data.Examples(series, labels, "crops")
  featurizer = data.FrameFeaturizer(1)
  spec = mm.StepLabels(pad=-1)
  config = data.PipelineConfig(max_len=40, batch_size=8, shuffle=False,
                               labels=spec, crop_fraction=0.5, seed=3)
  whole = {int(s[0, 0]) // 1000: len(s) for s in series if len(s)}

  def passes(start=0, count=9):
    batches = data.make_dataset(examples, featurizer, config, True,
                                start_batch=start).take(count)
    return [(f["frames"].numpy()[..., 0], f["lengths"].numpy(),
             l.numpy(), w.numpy()) for f, l, w in batches]

  batches = passes()
  for frames, lengths, tags, weights in batches:
    for row, length, tag, weight in zip(frames, lengths, tags, weights):
      if not length:
        continue
      window = row[:length]
      index, first = divmod(int(window[0]), 1000)
      assert length >= np.ceil(0.5 * whole[index])
      np.testing.assert_array_equal(window, np.arange(
          first, first + length) + 1000.0 * index)
      assert first + length <= whole[index]
      np.testing.assert_array_equal(tag[:length], (window + 0.5).astype(int))
      assert (tag[length:] == -1).all() and (row[length:] == 0).all()
  kept = [lengths for _, lengths, _, weights in batches]
  assert any((a != b).any() for a, b in zip(kept[:3], kept[3:6])), (
      "the same crops every pass")
  for got, want in zip(passes(start=4, count=5), batches[4:]):
    for a, b in zip(got, want):
      np.testing.assert_array_equal(a, b)
  evaluation = data.make_dataset(examples, featurizer, dataclasses.replace(
      config, crop_fraction=1.0), False)
  read = np.concatenate([f["lengths"].numpy()[w.numpy() > 0]
                         for f, _, w in evaluation])
  assert sorted(read) == sorted(len(s) for s in series)
  # Static shapes (TPU): cropped batches keep the bucket's width.
  static = data.make_dataset(examples, featurizer, dataclasses.replace(
      config, static_shapes=True), True)
  for features, tags, _ in static.take(3):
    assert features["frames"].shape[1] == tags.shape[1] == 40


def test_network_copies_train_side_by_side_and_serve_as_one(folder,
                                                           tmp_path):
  """--networks=2: two copies of the frame network, initialized apart, each
  trained on its own loss; one scale of their mean fitted on validation;
  the ensemble is padding invariant and serves its combined output."""
  model_dir = str(tmp_path / "run")
  config = training.ExperimentConfig.create(
      data_format="ts", data_path=folder, train_steps=12, networks=2, **{
          k: v for k, v in TINY.items() if k != "embedding_dim"})
  summary = training.train_and_evaluate(config, model_dir,
                                        tf.distribute.get_strategy())
  weights = summary["held_out_fit"]["member_weights"]
  assert list(weights) == ["network", "network_2"]
  # Alike members keep equal weights: one scale of their mean is fitted.
  assert weights["network"] == weights["network_2"] > 0
  run = training.load_trained(model_dir)
  np.testing.assert_allclose(run.model.member_weights, list(weights.values()))
  for part in ("backbone", "head"):  # neither shared nor initialized alike
    first, second = (getattr(run.model.member(n), part).get_weights()
                     for n in weights)
    assert len(first) == len(second)
    assert not any(np.allclose(a, b) for a, b in zip(first, second)
                   if np.abs(a).max() > 0), part
  with open(os.path.join(model_dir, "history.json")) as f:
    history = json.load(f)
  assert {"loss/network", "loss/network_2"} <= set(history["train"][-1][1])
  series = testing.random_sequences(5, 10, dim=CHANNELS, seed=8)
  testing.assert_padding_invariant(run.model, series)
  rows = run.server().predict(series)
  frames, mask = testing.pad_batch(series, 10)
  outputs = run.model({"frames": tf.constant(frames), "lengths": tf.constant(
      mask.sum(1), tf.int32)}, training=False)
  np.testing.assert_allclose([r["probabilities"] for r in rows], tf.nn.softmax(
      outputs.outputs).numpy(), atol=1e-5)


def test_crop_fraction_is_refused_for_texts(tmp_path):
  """Texts are not cropped: the flag names its value and what works."""
  config = training.ExperimentConfig.create(train_steps=1,
                                            crop_fraction=0.5)
  with pytest.raises(mm.SettingError, match=r"--crop_fraction=0.5: texts"):
    training.train_and_evaluate(config, str(tmp_path / "run"),
                                tf.distribute.get_strategy())


@pytest.mark.parametrize("crop_fraction", [1.0, 0.6])
def test_frames_train_the_same_on_one_and_two_replicas(folder, mirrored,
                                                       crop_fraction):
  """The global-batch loss, its gradient and the metrics do not depend on
  the replica count (frames and their lengths split across replicas; with
  random crops, every replica's rows cut as on one replica)."""
  examples = data.read_examples("ts", folder, "train")
  statistics = data.ChannelStatistics.of(examples.texts)
  task = mm.ClassificationTask(label_names=["down", "up"])
  encoded = examples.with_labels(task.encode_labels(examples.labels, ""))
  results = []
  for strategy in (tf.distribute.get_strategy(), mirrored):
    keras.utils.set_random_seed(3)
    with strategy.scope():
      model = frame_model(strides=2)
      model.build()
      optimizer = training.make_optimizer("adam", 1e-2)
      optimizer.build(model.trainable_variables)
    featurizer = data.FrameFeaturizer(statistics.channels)
    trainer = training.Trainer(task, model, optimizer, strategy)
    config = data.PipelineConfig(max_len=40, batch_size=8, shuffle=False,
                                 labels=task.labels,
                                 crop_fraction=crop_fraction)
    trainer.set_train_data(lambda ctx, start: data.make_dataset(
        encoded, featurizer, config, True, ctx, start))
    losses = [trainer.train(1)["loss"] for _ in range(3)]
    metrics = trainer.evaluate(lambda ctx: data.make_dataset(
        encoded, featurizer, dataclasses.replace(config, crop_fraction=1.0),
        False, ctx))
    trainer.close()
    results.append((losses, metrics, model.get_weights()))
  (one, one_metrics, one_weights), (two, two_metrics, two_weights) = results
  np.testing.assert_allclose(two, one, atol=1e-4)
  assert two_metrics["examples"] == one_metrics["examples"] == 120
  assert two_metrics["accuracy"] == pytest.approx(one_metrics["accuracy"])
  for got, want in zip(two_weights, one_weights):
    np.testing.assert_allclose(got, want, atol=1e-4)


RESEARCH = '''"""frame_research.py: a frame encoder and a frame task, outside maskmodels."""
import dataclasses

import numpy as np
import tensorflow as tf

import maskmodels as mm


@mm.register_encoder("temporal_conv")
class TemporalConv(mm.Configurable, mm.Encoder):
  """Two dilated masked convolutions over the frames."""

  @dataclasses.dataclass
  class Config(mm.Settings):
    temporal_width: int = mm.setting(16, "temporal_conv: channels.", lower=1,
                                     resume=True)

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.convs = [mm.MaskedConv1D(self.settings.temporal_width, 3,
                                  dilation_rate=d, activation="relu",
                                  dtype=self.dtype_policy) for d in (1, 2)]

  def call(self, inputs, mask=None, training=None):
    x = inputs
    for conv in self.convs:
      x, mask = conv(x, mask=mask)
    return x, mask


@mm.register_task("series_regression")
class SeriesRegression(mm.Task):
  """A number per series (the .ts format's @targetLabel): squared error,
  MAE, lower is better."""

  labels = mm.LabelSpec("float32")
  inputs = ("frames",)
  best_metric, best_mode = "mae", "min"
  metric_units = {"loss": "squared error", "mae": "absolute error"}

  def encode_labels(self, raw_labels, source):
    return np.array([float(v) for v in raw_labels], np.float32)

  @property
  def output_size(self):
    return 1

  def compute_loss(self, labels, outputs, training):
    return tf.square(tf.cast(outputs.outputs, tf.float32)[:, 0] - labels)

  def build_metrics(self, training):
    import keras
    return dict(super().build_metrics(training),
                mae=keras.metrics.Mean(name="mae"))

  def update_metrics(self, metrics, labels, outputs, losses, loss_weights):
    super().update_metrics(metrics, labels, outputs, losses, loss_weights)
    errors = tf.abs(tf.cast(outputs.outputs, tf.float32)[:, 0] - labels)
    metrics["mae"].update_state(errors, sample_weight=loss_weights)

  display = {"output": "prediction"}

  def served_outputs(self, outputs):
    return {"prediction": tf.cast(outputs.outputs, tf.float32)[:, 0]}
'''


def write_research(folder):
  """The research module and its data (.ts targets) in ``folder``; returns
  the series."""
  series, _ = synthetic_series(80, seed=9)
  targets = [f"{float(s[-1, 0] - s[0, 0]):.4f}" for s in series]
  lines = ["@problemName Slopes", "@timeStamps false", "@univariate false",
           f"@dimensions {CHANNELS}", "@equalLength false",
           "@classLabel false", "@targetLabel true", "@data"]
  lines += [":".join(",".join(f"{v:.5g}" for v in s[:, c])
                     for c in range(CHANNELS)) + f":{t}"
            for s, t in zip(series, targets)]
  (folder / "slopes.ts").write_text("\n".join(lines) + "\n")
  (folder / "frame_research.py").write_text(RESEARCH)
  return series


def test_a_research_frame_encoder_and_task_train_evaluate_and_serve(
    tmp_path):
  """In process, as the commands do it: the module's encoder (its setting
  saved), its task (its metric picks the checkpoint), the export, and
  prediction from the SavedModel."""
  series = write_research(tmp_path)
  sys.path.insert(0, str(tmp_path))
  try:
    import frame_research  # noqa: F401  pylint: disable=import-outside-toplevel,import-error,unused-import
  finally:
    sys.path.remove(str(tmp_path))
  config = training.ExperimentConfig.create(
      data_format="ts", data_path=str(tmp_path / "slopes.ts"),
      validation_fraction=0.25, test_split="", task="series_regression",
      encoder="temporal_conv", temporal_width=8, train_steps=20,
      steps_per_loop=10, batch_size=16, warmup_steps=2)
  model_dir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, model_dir,
                                        tf.distribute.get_strategy())
  assert "best_validation_mae" in summary
  saved = training.ModelDirectory(model_dir).load_config()
  assert saved.model.encoder_config == {"temporal_width": 8}
  metrics = training.evaluate(model_dir, data.read_examples(
      "ts", str(tmp_path / "slopes.ts")))
  assert metrics["examples"] == 80 and np.isfinite(metrics["mae"])
  from maskmodels.commands import predict  # pylint: disable=import-outside-toplevel
  export_dir = export.export_saved_model(model_dir, str(tmp_path / "exp"))
  serve, describe, kind = predict.server_and_kind(export_dir)
  assert kind.name == "frames"
  lines = [describe(s, row) for s, row in zip(series, serve(series, 16))]
  assert re.fullmatch(rf"-?\d+\.\d{{4}}\ta series of {len(series[0])} "
                      rf"frames", lines[0]), lines[0]
  run = training.load_trained(model_dir)
  np.testing.assert_allclose(
      [row["prediction"] for row in serve(series, 16)],
      [row["prediction"] for row in run.server().predict(series)], atol=1e-5)


@pytest.mark.slow
def test_a_research_frame_encoder_and_task_run_through_every_command(
    tmp_path):
  """A module outside the package registers a frame encoder with a setting
  of its own and a task reading .ts targets; train, evaluate, export and
  predict (from the SavedModel) find them with --import, each command in a
  fresh process."""
  series = write_research(tmp_path)
  model_dir, export_dir = tmp_path / "run", tmp_path / "exported"
  common = ["--import=frame_research", f"--model_dir={model_dir}"]
  steps = [
      ("train.py", common + [
          "--data_format=ts", f"--data_path={tmp_path / 'slopes.ts'}",
          "--validation_fraction=0.25", "--test_split=", "--task="
          "series_regression", "--encoder=temporal_conv",
          "--temporal_width=8", "--train_steps=20", "--steps_per_loop=10",
          "--batch_size=16", "--warmup_steps=2"]),
      ("evaluate.py", common + [f"--data_path={tmp_path / 'slopes.ts'}"]),
      ("export.py", common + [f"--export_dir={export_dir}"]),
      ("predict.py", ["--import=frame_research", f"--model_dir={export_dir}",
                      "--data_format=ts",
                      f"--data_path={tmp_path / 'slopes.ts'}"]),
  ]
  from helpers import run_script  # pylint: disable=import-outside-toplevel
  outputs = {}
  for script, args in steps:
    result = run_script(script, *args, cwd=str(tmp_path))
    assert result.returncode == 0, (script, result.stderr[-3000:])
    outputs[script] = result.stdout
  saved = json.load(open(model_dir / "config.json"))
  assert saved["model"]["encoder_config"] == {"temporal_width": 8}
  assert saved["data"]["inputs"] == "frames"
  evaluated = json.loads(outputs["evaluate.py"].splitlines()[-1])
  assert evaluated["examples"] == 80 and "mae" in evaluated
  predicted = outputs["predict.py"].strip().splitlines()
  assert len(predicted) == 80
  assert predicted[0].endswith(f"\ta series of {len(series[0])} frames")
  float(predicted[0].split("\t")[0])


def test_research_code_registers_an_input_kind_of_its_own(tmp_path):
  """A third kind, from outside the package: each example a plain list of
  numbers (one channel), read by a data format of its own; it trains,
  evaluates and serves without touching the library."""

  @mm.register_input_kind("numbers")
  class Numbers(data.FramesKind):  # pylint: disable=unused-variable
    """Plain lists of numbers: one-channel frames."""
    name = "numbers"
    describes = "lists of numbers"

    def holds(self, inputs):
      return all(isinstance(v, list) and all(
          isinstance(x, float) for x in v) for v in inputs)

    def fit(self, settings, train, verbose=1):
      return data.ChannelStatistics.of(
          [np.asarray(v, np.float32)[:, None] for v in train.texts])

    def check(self, assets, examples):
      del assets, examples

    def featurizer(self, config, assets):
      return NumbersFeaturizer(1)

    def arguments(self, inputs, channels=None):
      return super().arguments([np.asarray(v, np.float32)[:, None]
                                for v in inputs], 1)

  class NumbersFeaturizer(data.FrameFeaturizer):
    kind = "numbers"

    def inputs_dataset(self, examples):
      return super().inputs_dataset(data.Examples(
          [np.asarray(v, np.float32)[:, None] for v in examples.texts],
          examples.labels, examples.source))

    def example_lengths(self, examples, max_len=None, truncation="head"):
      return data.kinds.clipped([len(v) for v in examples.texts], max_len)

  def read_numbers(path, split, text_column, label_column):
    del split, text_column, label_column
    texts, labels = [], []
    with open(path) as f:
      for line in f:
        label, _, values = line.strip().partition(" ")
        texts.append([float(v) for v in values.split(",")])
        labels.append(label)
    return data.Examples(texts, labels, path)

  data.FORMATS.add("numbers", data.Reader(read_numbers, columns=()))
  rng = np.random.default_rng(10)
  path = tmp_path / "numbers.txt"
  with open(path, "w") as f:
    for index in range(60):
      label = ["low", "high"][index % 2]
      values = rng.normal(loc=3.0 if label == "high" else 0.0,
                          size=int(rng.integers(2, 9)))
      f.write(f"{label} {','.join(f'{v:.3f}' for v in values)}\n")
  config = training.ExperimentConfig.create(
      data_format="numbers", data_path=str(path), validation_fraction=0.25,
      test_split="", conv_filters=[4], kernel_size=[3], pool_size=[1],
      gru_units=[4], train_steps=15, steps_per_loop=5, batch_size=16,
      warmup_steps=1)
  model_dir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, model_dir,
                                        tf.distribute.get_strategy())
  assert summary["best_validation_accuracy"] > 0.7
  saved = training.ModelDirectory(model_dir).load_config()
  assert saved.data.inputs == "numbers" and saved.model.backbone == "frames"
  rows = training.load_trained(model_dir).server().predict(
      [[3.1, 2.9, 3.3], [0.1, -0.2]])
  assert [r["labels"] for r in rows] == [b"high", b"low"]
