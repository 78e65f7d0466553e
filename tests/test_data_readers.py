import gzip
import json
import logging
import os
import re

import numpy as np
import pytest

from maskmodels import data, tasks
from maskmodels.data import synthetic
from maskmodels.errors import InputError

CLASSIFICATION = tasks.ClassificationTask()


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


def test_aclimdb_reader_keeps_folder_names_as_labels(imdb_root):
  examples = data.read_aclimdb(imdb_root, "train")
  assert len(examples) == 5
  assert sorted(zip(examples.texts, examples.labels)) == sorted([
      ("great film", "pos"), ("loved it", "pos"), ("dull", "neg"),
      ("", "neg"), ("bad\n<br />plot", "neg")])
  again = data.read_aclimdb(imdb_root, "train")
  assert again.texts == examples.texts  # stable order
  # The task names the classes, in sorted order, and encodes the labels.
  names = CLASSIFICATION.fit_labels(examples.labels, examples.source)
  assert names == ["neg", "pos"]
  task = tasks.ClassificationTask(label_names=names)
  encoded = task.encode_labels(examples.labels, examples.source)
  assert encoded.dtype == np.int32
  assert encoded[examples.texts.index("dull")] == 0


def test_aclimdb_reader_errors_name_the_path(imdb_root, tmp_path):
  with pytest.raises(data.UnknownSplit, match=re.escape(
      os.path.join(imdb_root, "dev")) + ".*expected one of the split "
                     "folders of .*\\['test', 'train'\\]"):
    data.read_aclimdb(imdb_root, "dev")
  with pytest.raises(FileNotFoundError, match=re.escape(
      os.path.join(str(tmp_path), "nowhere", "train"))):
    data.read_aclimdb(str(tmp_path / "nowhere"), "train")
  os.makedirs(tmp_path / "empty" / "train" / "pos")
  with pytest.raises(ValueError, match="No examples found in .*empty"):
    data.read_aclimdb(str(tmp_path / "empty"), "train")
  _write(str(tmp_path / "one" / "train" / "pos" / "a.txt"), "fine")
  one = data.read_aclimdb(str(tmp_path / "one"), "train")
  with pytest.raises(ValueError, match="single class \\['pos'\\]"):
    CLASSIFICATION.fit_labels(one.labels, one.source)


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
  assert examples.labels == ["pos", "neg", "neg"]
  tsv = str(tmp_path / "d.tsv")
  _write(tsv, "text\tlabel\nhello\tb\nbye\ta\n")
  examples = data.read_examples("tsv", tsv)
  assert examples.labels == ["b", "a"]


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
  with pytest.raises(ValueError, match="column 'review' not found in .*"
                     "expected one of its columns \\['text', 'label'\\]"):
    data.read_delimited(path, text_column="review")
  _write(path, "text,label\nfine,pos\nfine,meh\n")
  examples = data.read_delimited(path)
  with pytest.raises(ValueError, match="Unknown label 'meh' in .*d.csv, "
                     "line 3; expected one of \\['neg', 'pos'\\]"):
    tasks.ClassificationTask(label_names=["neg", "pos"]).encode_labels(
        examples.labels, examples.labelled_source())
  # Without their places (a plain source), examples are counted from 1.
  with pytest.raises(ValueError, match="in .*d.csv \\(example 2\\)"):
    tasks.ClassificationTask(label_names=["neg", "pos"]).encode_labels(
        examples.labels, examples.source)
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
  assert examples.labels == [2, 0, 1]  # raw: numbers stay numbers
  assert CLASSIFICATION.fit_labels(examples.labels, "") == ["0", "1", "2"]
  with gzip.open(str(tmp_path / "d.jsonl.gz"), "wt") as f:
    f.write(body)
  assert data.read_jsonl(str(tmp_path / "d.jsonl.gz")).texts == examples.texts
  _write(path, '{"text": "x"}\n')
  with pytest.raises(ValueError, match="field 'label' missing in .* line 1; "
                     "expected one of its fields \\['text'\\]"):
    data.read_jsonl(path)
  _write(path, '{"text": "x", "label": 1}\n{oops\n')
  with pytest.raises(ValueError, match="Invalid JSON in .* at line 2"):
    data.read_jsonl(path)


def test_unknown_format_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="data format 'xml' is not registered; choose one of aclimdb, cmudict, conllu, csv, default"):
    data.read_examples("xml", str(tmp_path))


def test_validation_split_is_disjoint_complete_and_seeded():
  examples = data.Examples([f"t{i}" for i in range(50)],
                           ["ab"[i % 2] for i in range(50)])
  train, valid = data.split_validation(examples, 0.2, seed=3)
  assert len(valid) == 10 and len(train) == 40
  assert sorted(train.texts + valid.texts) == sorted(examples.texts)
  again, _ = data.split_validation(examples, 0.2, seed=3)
  assert again.texts == train.texts
  other, _ = data.split_validation(examples, 0.2, seed=4)
  assert other.texts != train.texts
  assert all(label == "ab"[int(text[1:]) % 2]  # labels travel with inputs
             for text, label in zip(train.texts, train.labels))
  with pytest.raises(ValueError, match="must be in \\(0, 1\\), got 1.5"):
    data.split_validation(examples, 1.5)


def test_default_dataset_is_embedded_and_varied():
  default = tasks.ClassificationTask.default_data
  train, test = (data.read_examples("default", "", split,
                                    default_data=default)
                 for split in ("train", "test"))
  assert sorted(set(train.labels)) == sorted(set(test.labels)) == [
      "neg", "pos"]
  assert len(train) >= 5000 and len(test) >= 1000
  words = np.array([len(t.split()) for t in train.texts])
  assert words.min() < 20 and words.max() > 400  # widely varying lengths
  assert 0.4 < np.mean([label == "pos" for label in train.labels]) < 0.6
  assert not set(train.texts) & set(test.texts)
  with pytest.raises(InputError, match="no embedded data"):
    data.read_examples("default", "", "train", default_data=None)


CONLLU = """# newdoc id = demo
# sent_id = 1
# text = Don't stop.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tstop\tstop\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
3.1\tstopped\t_\t_\t_\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tCafé\tcafé\tNOUN\tNN\t_\t0\troot\t_\t_

"""


def test_conllu_reader_takes_syntactic_words_and_the_chosen_tags(tmp_path):
  path = str(tmp_path / "d.conllu")
  _write(path, CONLLU)
  upos = data.read_examples("conllu", path)
  # The range line 1-2 and the empty node 3.1 are not words; comments skip.
  assert upos.texts == [["Do", "n't", "stop", "."], ["Café"]]
  assert upos.labels == [["AUX", "PART", "VERB", "PUNCT"], ["NOUN"]]
  xpos = data.read_examples("conllu", path, label_column="xpos")
  assert xpos.labels == [["VBP", "RB", "VB", "."], ["NN"]]
  with gzip.open(str(tmp_path / "d.conllu.gz"), "wt") as f:
    f.write(CONLLU)
  assert data.read_conllu(str(tmp_path / "d.conllu.gz")).texts == upos.texts
  with pytest.raises(InputError, match="tag column 'lemma'"):
    data.read_conllu(path, "lemma")


@pytest.mark.parametrize("line,reason", [
    ("1\tDo\tdo\tAUX", "4 tab-separated fields, CoNLL-U has 10"),
    ("x\tDo\tdo\tAUX\tVBP\t_\t0\troot\t_\t_", "'x' is not a valid ID")])
def test_a_malformed_conllu_line_is_an_error_naming_file_and_line(
    tmp_path, line, reason):
  path = str(tmp_path / "bad.conllu")
  _write(path, CONLLU + "# sent_id = 3\n" + line + "\n")
  with pytest.raises(InputError) as error:
    data.read_conllu(path)
  assert str(error.value).startswith(f"{path}:{CONLLU.count(chr(10)) + 2}: "
                                     f"malformed CoNLL-U line "
                                     f"({reason})")
  assert "\n" not in str(error.value)


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
