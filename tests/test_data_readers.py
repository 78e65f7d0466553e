import gzip
import json
import logging
import os
import re

import numpy as np
import pytest

from maskmodels import data
from maskmodels.data import synthetic


def _write(path, content, mode="w"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, mode) as f:
    f.write(content)


@pytest.fixture
def imdb_root(tmp_path):
  root = tmp_path / "aclImdb"
  for split in ("train", "test"):
    for name, texts in (("pos", ["great film", "loved it"]),
                        ("neg", ["dull", "", "bad\n<br />plot"])):
      for i, text in enumerate(texts):
        _write(str(root / split / name / f"{i}_1.txt"), text)
  _write(str(root / "train" / "urls.txt"), "ignored: not a class folder")
  return str(root)


def test_aclimdb_reader_orders_classes_by_name(imdb_root):
  examples = data.read_aclimdb(imdb_root, "train")
  assert examples.class_names == ["neg", "pos"]
  assert len(examples) == 5
  pairs = sorted(zip(examples.texts, examples.labels.tolist()))
  assert pairs == sorted([("great film", 1), ("loved it", 1), ("dull", 0),
                          ("", 0), ("bad\n<br />plot", 0)])
  again = data.read_aclimdb(imdb_root, "train")
  assert again.texts == examples.texts  # stable order
  chosen = data.read_aclimdb(imdb_root, "test", class_names=["pos", "neg"])
  assert chosen.class_names == ["pos", "neg"]
  assert chosen.labels[chosen.texts.index("dull")] == 1


def test_aclimdb_reader_errors_name_the_path(imdb_root, tmp_path):
  with pytest.raises(FileNotFoundError, match=re.escape(
      os.path.join(imdb_root, "dev"))):
    data.read_aclimdb(imdb_root, "dev")
  with pytest.raises(FileNotFoundError, match="Class folder not found.*unsup"):
    data.read_aclimdb(imdb_root, "train", class_names=["neg", "unsup"])
  os.makedirs(tmp_path / "empty" / "train" / "pos")
  with pytest.raises(ValueError, match="No examples found in .*empty"):
    data.read_aclimdb(str(tmp_path / "empty"), "train")
  _write(str(tmp_path / "one" / "train" / "pos" / "a.txt"), "fine")
  with pytest.raises(ValueError, match="single class \\['pos'\\]"):
    data.read_aclimdb(str(tmp_path / "one"), "train")


def test_non_utf8_bytes_are_replaced_counted_and_warned_once(tmp_path,
                                                             caplog):
  root = tmp_path / "d"
  _write(str(root / "train" / "a" / "1.txt"), b"caf\xe9 ok", "wb")
  _write(str(root / "train" / "a" / "2.txt"), b"\xff\xfe", "wb")
  _write(str(root / "train" / "b" / "3.txt"), "fine", "w")
  with caplog.at_level(logging.WARNING):
    examples = data.read_aclimdb(str(root), "train")
  assert examples.texts[0] == "caf\ufffd ok"
  warnings = [r for r in caplog.records if "not UTF-8" in r.getMessage()]
  assert len(warnings) == 1
  assert warnings[0].getMessage().startswith("2 text(s)")


def test_csv_and_tsv_readers(tmp_path):
  path = str(tmp_path / "d.csv")
  _write(path, 'id,review,sentiment\n1,"good, really",pos\n2,,neg\n'
         '3,"multi\nline",neg\n')
  examples = data.read_examples("csv", path, text_column="review",
                                label_column="sentiment")
  assert examples.texts == ["good, really", "", "multi\nline"]
  assert examples.labels.tolist() == [1, 0, 0]
  tsv = str(tmp_path / "d.tsv")
  _write(tsv, "text\tlabel\nhello\tb\nbye\ta\n")
  examples = data.read_examples("tsv", tsv)
  assert examples.class_names == ["a", "b"] and examples.labels.tolist() == [1, 0]


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t")])
def test_delimited_fields_of_a_million_characters_are_read(tmp_path, fmt,
                                                           sep):
  huge = "word " * 200_000  # 1,000,000 characters, over csv's 131,072
  path = str(tmp_path / f"d.{fmt}")
  _write(path, f"text{sep}label\n{huge}{sep}pos\nshort{sep}neg\n")
  examples = data.read_examples(fmt, path)
  assert [len(t) for t in examples.texts] == [1_000_000, 5]
  import csv
  assert csv.field_size_limit() == 131_072  # restored for other code


def test_csv_errors_name_column_line_and_value(tmp_path):
  path = str(tmp_path / "d.csv")
  _write(path, "text,label\nfine,pos\nragged,pos,extra\n")
  with pytest.raises(ValueError, match="Ragged row in .*d.csv at line 3: 3 "
                     "fields, the header has 2"):
    data.read_delimited(path)
  with pytest.raises(ValueError, match="Column 'review' not found in .*"
                     "columns are \\['text', 'label'\\]"):
    data.read_delimited(path, text_column="review")
  _write(path, "text,label\nfine,pos\nfine,meh\n")
  with pytest.raises(ValueError, match="Unknown label 'meh' .*expected one of "
                     "\\['neg', 'pos'\\]"):
    data.read_delimited(path, class_names=["neg", "pos"])
  with pytest.raises(FileNotFoundError, match="missing.csv"):
    data.read_delimited(str(tmp_path / "missing.csv"))
  _write(path, "")
  with pytest.raises(ValueError, match="the file is empty"):
    data.read_delimited(path)


def test_jsonl_reader_plain_and_gzipped(tmp_path):
  records = [{"text": "a b", "label": 2}, {"text": "", "label": 0},
             {"text": "c", "label": 1}]
  body = "".join(json.dumps(r) + "\n" for r in records) + "\n"
  path = str(tmp_path / "d.jsonl")
  _write(path, body)
  examples = data.read_jsonl(path)
  assert examples.class_names == ["0", "1", "2"]
  assert examples.labels.tolist() == [2, 0, 1]
  with gzip.open(str(tmp_path / "d.jsonl.gz"), "wt") as f:
    f.write(body)
  assert data.read_jsonl(str(tmp_path / "d.jsonl.gz")).texts == examples.texts
  _write(path, '{"text": "x"}\n')
  with pytest.raises(ValueError, match="Field 'label' missing in .* line 1"):
    data.read_jsonl(path)
  _write(path, '{"text": "x", "label": 1}\n{oops\n')
  with pytest.raises(ValueError, match="Invalid JSON in .* at line 2"):
    data.read_jsonl(path)


def test_unknown_format_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="data format 'xml' is not registered; choose one of aclimdb, csv, default"):
    data.read_examples("xml", str(tmp_path))


def test_validation_split_is_disjoint_complete_and_seeded():
  examples = data.Examples([f"t{i}" for i in range(50)],
                           np.arange(50, dtype=np.int32) % 2, ["a", "b"])
  train, valid = data.split_validation(examples, 0.2, seed=3)
  assert len(valid) == 10 and len(train) == 40
  assert sorted(train.texts + valid.texts) == sorted(examples.texts)
  again, _ = data.split_validation(examples, 0.2, seed=3)
  assert again.texts == train.texts
  other, _ = data.split_validation(examples, 0.2, seed=4)
  assert other.texts != train.texts
  with pytest.raises(ValueError, match="must be in \\(0, 1\\), got 1.5"):
    data.split_validation(examples, 1.5)


def test_default_dataset_is_embedded_and_varied():
  train, test = data.read_default("train"), data.read_default("test")
  assert train.class_names == test.class_names == ["neg", "pos"]
  assert len(train) >= 5000 and len(test) >= 1000
  words = np.array([len(t.split()) for t in train.texts])
  assert words.min() < 20 and words.max() > 400  # widely varying lengths
  assert 0.4 < train.labels.mean() < 0.6
  assert not set(train.texts) & set(test.texts)


def _label_from_cues(text):
  score = 0
  words = re.findall(r"[a-z]+", text.lower())
  for i, word in enumerate(words):
    polarity = (word in synthetic.POSITIVE) - (word in synthetic.NEGATIVE)
    if polarity:
      score += -polarity if i and words[i - 1] == "not" else polarity
  return int(score > 0)


def test_synthetic_label_follows_cues_anywhere_and_is_seeded():
  texts, labels = synthetic.generate_reviews(300, seed=5)
  assert [_label_from_cues(t) for t in texts] == labels
  # Cues appear anywhere: some decisive cue lies past the middle of the text.
  late = sum(1 for t in texts for w in synthetic.POSITIVE + synthetic.NEGATIVE
             if t.lower().rfind(w) > len(t) // 2)
  assert late > 50
  assert synthetic.generate_reviews(20, seed=5)[0] == texts[:20]
