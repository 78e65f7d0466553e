import pytest
import tensorflow as tf

from maskmodels import data
from maskmodels.data import text as text_lib

TEXTS = ["The film was BRILLIANT!<br /><br />Really, brilliant.",
         "A dull, dull film.", "Café crème", "", "   \t  "]


@pytest.fixture(params=["word", "wordpiece"])
def tokenizer(request, tmp_path):
  vocab = data.learn_vocabulary(TEXTS * 3, request.param, 60)
  path = str(tmp_path / "vocab.txt")
  data.write_vocabulary(vocab, path)
  return data.build_tokenizer(request.param, path, num_oov_buckets=3)


def test_standardize_folds_case_and_removes_br_tags():
  out = text_lib.standardize(tf.constant(["A<br />B<BR/>C", "ÉTÉ"]))
  assert out.numpy().tolist() == ["a b c".encode(), "été".encode()]


def test_words_split_punctuation():
  words = text_lib.split_words(tf.constant(["it's good, really!"]))
  assert words.to_list() == [[b"it", b"'", b"s", b"good", b",", b"really",
                              b"!"]]


def test_vocabulary_file_round_trip_gives_same_ids(tokenizer, tmp_path):
  copy = str(tmp_path / "copy" / "vocab.txt")
  tokenizer.save_vocabulary(copy)
  assert data.read_vocabulary(copy) == tokenizer.vocab
  reloaded = data.build_tokenizer(tokenizer.kind, copy, num_oov_buckets=3)
  probe = TEXTS + ["unseen words zebra"]
  assert reloaded.encode(probe).to_list() == tokenizer.encode(probe).to_list()
  assert reloaded.vocab_size == tokenizer.vocab_size


def test_pad_id_zero_is_never_emitted_and_ids_fit(tokenizer):
  ids = tokenizer.encode(TEXTS + ["[PAD] [pad] zebra qwerty"])
  flat = ids.flat_values.numpy()
  assert flat.min() >= 1 and flat.max() < tokenizer.vocab_size
  assert ids.dtype == tf.int32


def test_empty_and_whitespace_texts_become_empty_sequences(tokenizer):
  ids = tokenizer.encode(["", "   \n\t "])
  assert ids.row_lengths().numpy().tolist() == [0, 0]


def test_bytes_that_are_not_utf8_are_replaced_in_graph(tokenizer):
  ids = tokenizer.encode(tf.constant([b"good \xff\xfe film", b"\xc3"]))
  assert ids.row_lengths().numpy()[0] >= 2


def test_truncation_head_tail_both():
  tokens = tf.ragged.constant([[1, 2, 3, 4, 5, 6, 7], [1, 2], []])
  head = text_lib.truncate_tokens(tokens, 4, "head").to_list()
  tail = text_lib.truncate_tokens(tokens, 4, "tail").to_list()
  both = text_lib.truncate_tokens(tokens, 5, "both").to_list()
  assert head == [[1, 2, 3, 4], [1, 2], []]
  assert tail == [[4, 5, 6, 7], [1, 2], []]
  assert both == [[1, 2, 5, 6, 7], [1, 2], []]


@pytest.mark.parametrize("truncation", text_lib.TRUNCATIONS)
def test_very_long_text_is_clipped_before_tokenizing(tokenizer, truncation):
  huge = "start " + "dull film " * 100_000 + "end"  # ~1,000,000 characters
  clipped = text_lib.clip_characters(tf.constant([huge]), 64 * 16, truncation)
  assert tf.strings.length(clipped, unit="UTF8_CHAR").numpy()[0] <= 64 * 16 + 1
  ids = tokenizer.encode([huge, "short text"], max_len=64,
                         truncation=truncation)
  assert ids.row_lengths().numpy().tolist()[0] == 64
  first = tokenizer.encode(["start"]).to_list()[0]
  last = tokenizer.encode(["end"]).to_list()[0]
  row = ids.to_list()[0]
  assert (row[:len(first)] == first) == (truncation != "tail")
  assert (row[-len(last):] == last) == (truncation != "head")


def test_bad_tokenizer_arguments_and_corrupt_vocabularies(tmp_path):
  with pytest.raises(ValueError, match="tokenizer 'bpe' is not registered; choose one of char, word, wordpiece"):
    data.learn_vocabulary(TEXTS, "bpe", 10)
  with pytest.raises(FileNotFoundError, match="Vocabulary file not found: "
                     ".*nope.txt"):
    data.build_tokenizer("word", str(tmp_path / "nope.txt"))
  bad = tmp_path / "bad.txt"
  bad.write_text("the\nfilm\n")
  with pytest.raises(ValueError, match="corrupt: line 1 must be '\\[PAD\\]'"):
    data.read_vocabulary(str(bad))
  bad.write_text("[PAD]\nfilm\nfilm\n")
  with pytest.raises(ValueError, match="corrupt: line 3 \\('film'\\) is "
                     "empty or repeats line 2"):
    data.read_vocabulary(str(bad))
  bad.write_bytes(b"[PAD]\n\xff\n")
  with pytest.raises(ValueError, match="not UTF-8"):
    data.read_vocabulary(str(bad))
  bad.write_text("")
  with pytest.raises(ValueError, match="an empty file"):
    data.read_vocabulary(str(bad))
  word_vocab = tmp_path / "word.txt"
  word_vocab.write_text("[PAD]\nfilm\n")
  with pytest.raises(ValueError, match="has no '\\[UNK\\]' token"):
    data.build_tokenizer("wordpiece", str(word_vocab))
  with pytest.raises(ValueError, match="truncation must be one of .*'middle'"):
    data.build_tokenizer("word", str(word_vocab)).encode(["x"], 3, "middle")


def test_word_vocabulary_is_frequency_ranked():
  vocab = data.learn_vocabulary(["b b b a a c", "b a"], "word", 3)
  assert vocab == ["[PAD]", "b", "a"]
  assert len(data.learn_vocabulary(TEXTS, "word", 1000)) < 1000  # no padding


def test_rare_words_are_unknown_in_training_too(tmp_path):
  vocab = data.learn_vocabulary(["b b b a a c", "b a d"], "word", 100,
                                min_count=2)
  assert vocab == ["[PAD]", "b", "a"]  # c and d, seen once, are unknown
  path = str(tmp_path / "vocab.txt")
  data.write_vocabulary(vocab, path)
  ids = data.build_tokenizer("word", path).encode(["a c d b"]).to_list()
  assert ids == [[2, 3, 3, 1]]  # both rare words share the unknown bucket
  with pytest.raises(ValueError, match="min_count must be >= 1, got 0"):
    data.learn_vocabulary(["a"], "word", 10, min_count=0)


@pytest.mark.parametrize("case_fold", [True, False])
def test_case_folding_is_a_choice_of_vocabulary_and_lookup(tmp_path,
                                                           case_fold):
  sentences = [["US", "us", "Us"], ["US"]]
  vocab = data.learn_vocabulary(sentences, "word", 10, case_fold=case_fold)
  assert vocab == (["[PAD]", "us"] if case_fold else
                   ["[PAD]", "US", "Us", "us"])
  path = str(tmp_path / "vocab.txt")
  data.write_vocabulary(vocab, path)
  tokenizer = data.build_tokenizer("word", path, case_fold=case_fold)
  ids = tokenizer.encode_words(tf.ragged.constant([["US", "us", "uS"]]))
  assert ids.to_list() == ([[1, 1, 1]] if case_fold else [[1, 3, 4]])
  assert tokenizer.encode(["US us"]).to_list() == ([[1, 1]] if case_fold
                                                   else [[1, 3]])
