"""``maskmodels-evaluate`` from a checkout: see maskmodels/commands/evaluate.py."""

from maskmodels.commands import evaluate

if __name__ == "__main__":
  evaluate.run()
