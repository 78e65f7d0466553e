"""A run's model from its ``ModelConfig``: backbone + head (+ members).

Every part is a registered component built from its own settings: the
backbone (with its encoder and word features) and the head join in the
registered model (``--model``, a :class:`SequenceModel` unless research
code registers another); with ``--members``, that model and the named
members form an :class:`Ensemble`, the model being the member
``"network"``; ``--networks=N`` adds copies of it, ``"network_2"`` to
``"network_N"``, each initialized on its own.
"""

import keras

from maskmodels.errors import InputError
from maskmodels.registry import BACKBONES, HEADS, MEMBERS, MODELS
from maskmodels.models.ensemble import Ensemble

NETWORK = "network"


def build_backbone(settings, inputs):
  """The backbone (with its encoder and word features) ``settings`` (a
  ``ModelConfig``) describe, reading ``inputs`` (as :func:`assemble`
  takes them), under the global dtype policy."""
  if isinstance(inputs, int):
    inputs = {"vocab_size": inputs}
  if settings.word_features:
    inputs = dict(inputs, word_features=settings.word_features,
                  word_features_config=settings.word_features_config)
  return BACKBONES.get(settings.backbone or "sequence")(
      encoder=settings.encoder, encoder_config=settings.encoder_config,
      dtype=keras.mixed_precision.global_policy(), **inputs,
      **settings.backbone_config)


def _check_outputs(part, layer, per_token):
  """Raises an InputError unless ``layer`` (a head or member, described as
  ``part``) gives outputs per token exactly when the task labels tokens."""
  gives = bool(getattr(layer, "per_token", False))
  if gives != per_token:
    raise InputError(f"{part} gives "
                     f"{'per-token' if gives else 'per-sequence'} outputs; "
                     f"this task labels "
                     f"{'tokens' if per_token else 'sequences'}.")


def assemble(settings, inputs, output_size, per_token=False):
  """The model ``settings`` (a ``ModelConfig``) describe.

  Args:
    settings: the run's ``ModelConfig`` (every component's settings
      resolved, the backbone chosen).
    inputs: what the backbone reads, from the run's input kind
      (``{"vocab_size": n}`` for tokens; channels and their statistics for
      frames), or a vocabulary size.
    output_size: outputs per example or step (the task's).
    per_token: whether the task labels every step (members must too).

  Returns:
    An unbuilt Keras model.
  """
  policy = keras.mixed_precision.global_policy()
  members = {}
  for copy in range(settings.networks):
    backbone = build_backbone(settings, inputs)
    head = HEADS.get(settings.head)(output_size=output_size, dtype=policy,
                                    **settings.head_config)
    _check_outputs(f"head {settings.head!r}", head, per_token)
    name = NETWORK if not copy else f"{NETWORK}_{copy + 1}"
    members[name] = MODELS.get(settings.model)(
        backbone=backbone, head=head, name=name)
  if len(members) == 1 and not settings.members:
    return members[NETWORK]
  for name in settings.members:
    member = MEMBERS.get(name)(output_size=output_size, dtype=policy,
                               **settings.members_config[name])
    _check_outputs(f"member {name!r}", member, per_token)
    members[name] = member
  return Ensemble(members, tied=not settings.members, name="ensemble",
                  dtype=policy)
