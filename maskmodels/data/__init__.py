"""Data: readers, in-graph tokenization and featurization, batching."""

from maskmodels.data.features import Featurizer, words_of
from maskmodels.data.pipeline import (PipelineConfig, batches_per_pass,
                                      dataset_fn, distributed_iterator,
                                      labelled_batches,
                                      length_boundaries, make_dataset,
                                      padded_step_fraction, padding_stats,
                                      token_lengths)
from maskmodels.data.readers import (FORMATS, Examples, MissingColumn,
                                     Reader, UnknownSplit, read_aclimdb,
                                     read_conllu, read_delimited,
                                     read_examples, read_jsonl,
                                     split_validation)
from maskmodels.data.text import (TOKENIZERS, Tokenizer, WordPieceTokenizer,
                                  WordTokenizer, build_tokenizer,
                                  learn_vocabulary, parse_vocabulary,
                                  read_vocabulary, vocabulary_bytes,
                                  write_vocabulary)
