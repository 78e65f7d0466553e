"""Data: readers, input kinds and their featurizers, batching.

Importing this package registers the built-in data formats and input kinds
(text, words, frames).
"""

from maskmodels.data import frame_readers as _frame_formats  # noqa: F401
from maskmodels.data.frames import (ChannelStatistics, FrameFeaturizer,
                                    FramesKind)
from maskmodels.data.kinds import Featurizer as FeaturizerBase
from maskmodels.data.kinds import LENGTHS, InputKind, kind_of
from maskmodels.data.pipeline import (PipelineConfig, batches_per_pass,
                                      dataset_fn, distributed_iterator,
                                      labelled_batches,
                                      length_boundaries, make_dataset,
                                      padded_step_fraction)
from maskmodels.data.readers import (FORMATS, Examples, MissingColumn,
                                     Reader, Source, UnknownSplit,
                                     read_aclimdb,
                                     read_conllu, read_delimited,
                                     read_examples, read_jsonl,
                                     split_fold, split_validation)
from maskmodels.data.frame_readers import read_npz, read_ts, series_of
from maskmodels.data.text import (TOKENIZERS, Tokenizer, WordPieceTokenizer,
                                  WordTokenizer, build_tokenizer,
                                  learn_vocabulary, parse_vocabulary,
                                  read_vocabulary, vocabulary_bytes,
                                  write_vocabulary)
from maskmodels.data.tokens import (Featurizer, TextKind, TokenFeaturizer,
                                    WordsKind, token_lengths, words_of)
