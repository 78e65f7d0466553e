"""The command-line tools: ``maskmodels-train``, ``-evaluate``, ``-predict``
and ``-export`` (also ``python scripts/<name>.py`` in a checkout).

Each module defines its flags in ``define_flags`` (after ``--import``), a
``main(argv)``, and ``run()``, the console entry point.
"""
