"""Graph-building settings shared by the library's TensorFlow code.

maskmodels writes graph code without Python control flow on tensors (loops
are ``tf.while_loop``, branches ``tf.cond``), as Keras 3 does, so AutoGraph
need not convert it: importing this module adds a rule that AutoGraph
leaves the ``maskmodels`` package as written. Converting it cost seconds
for every ``tf.data`` pipeline and training step traced. Research code in
other modules is unaffected.
"""

from tensorflow.python.autograph.core import config as _autograph_config

_PACKAGE = "maskmodels"
if not any(getattr(rule, "_prefix", None) == _PACKAGE
           for rule in _autograph_config.CONVERSION_RULES):
  _autograph_config.CONVERSION_RULES = (
      (_autograph_config.DoNotConvert(_PACKAGE),) +
      tuple(_autograph_config.CONVERSION_RULES))
