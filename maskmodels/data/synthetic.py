"""Synthetic movie reviews: the embedded default dataset's generator.

Each review is filler sentences about a film, of widely varying length, with
a few sentiment cues placed anywhere in it. The label is the sign of the cues'
summed polarity, where "not" before a cue flips it. A model must find cues
anywhere in the text, and short reviews sit in batches with long ones, so a
model that reads padding as data is at a disadvantage.
"""

import numpy as np

POSITIVE = ("brilliant", "wonderful", "moving", "superb", "delightful",
            "gripping", "charming", "masterful", "stunning", "hilarious")
NEGATIVE = ("dreadful", "boring", "clumsy", "awful", "tedious", "lifeless",
            "predictable", "shallow", "messy", "forgettable")
_SUBJECTS = ("the film", "this movie", "the plot", "the script", "the cast",
             "the director", "the ending", "the soundtrack", "the pacing",
             "the dialogue", "the lead actor", "the camera work", "the sequel",
             "the story", "the editing")
_FILLER = (
    "i watched it with my {who} on a {when} evening",
    "{subject} runs for about {n} minutes",
    "it was shot in {place} over {n} weeks",
    "there is a long scene in a {place2} near the middle",
    "my {who} had read the book before",
    "we saw it at the {place2} downtown",
    "{subject} reminded me of an older {genre} from the {decade}s",
    "the trailer shows most of the first act",
    "it is a {genre} with a cast of {n} actors",
    "{subject} follows a {person} who moves to {place}",
    "the studio released it in {decade}",
    "there are {n} songs on the soundtrack",
    "i paid {n} dollars for the ticket",
    "the {person} meets a {person} halfway through",
)
_CUE = (
    "{subject} was {neg}{cue}",
    "honestly {subject} felt {neg}{cue} to me",
    "i found {subject} {neg}{cue}",
    "{subject} is {neg}{cue} from start to finish",
)
_WORDS = {
    "who": ("sister", "brother", "friends", "parents", "partner", "class"),
    "when": ("monday", "rainy", "quiet", "long", "sunday", "late"),
    "place": ("paris", "ohio", "a small town", "the desert", "tokyo", "rome"),
    "place2": ("cinema", "diner", "museum", "train station", "school"),
    "genre": ("thriller", "comedy", "drama", "western", "musical", "mystery"),
    "person": ("teacher", "detective", "farmer", "singer", "nurse", "pilot"),
    "decade": ("1950", "1970", "1990", "2000"),
}
CLASS_NAMES = ("neg", "pos")


def _fill(template, rng):
  values = {key: rng.choice(options) for key, options in _WORDS.items()}
  values["subject"] = rng.choice(_SUBJECTS)
  values["n"] = str(rng.integers(2, 180))
  return template.format(**values)


def generate_review(rng, min_words=4, max_words=500):
  """One review and its label (0 = neg, 1 = pos), from a numpy Generator."""
  target = int(np.exp(rng.uniform(np.log(min_words), np.log(max_words))))
  sentences = []
  while sum(len(s.split()) for s in sentences) < target:
    sentences.append(_fill(rng.choice(_FILLER), rng))
  num_cues = int(rng.choice([1, 3, 5], p=[0.5, 0.35, 0.15]))
  score = 0
  for _ in range(num_cues):
    polarity = rng.choice([-1, 1])
    negated = rng.random() < 0.25
    cue = rng.choice(POSITIVE if polarity > 0 else NEGATIVE)
    template = rng.choice(_CUE).replace("{cue}", cue)
    sentence = _fill(template.replace("{neg}", "not " if negated else ""), rng)
    score += -polarity if negated else polarity
    sentences.insert(int(rng.integers(0, len(sentences) + 1)), sentence)
  text = ". ".join(s.capitalize() for s in sentences) + "."
  return text, int(score > 0)


def generate_reviews(count, seed):
  """``count`` reviews as ``(texts, labels)``; the same seed, the same data."""
  rng = np.random.default_rng(seed)
  pairs = [generate_review(rng) for _ in range(count)]
  return [t for t, _ in pairs], [label for _, label in pairs]
