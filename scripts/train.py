"""``maskmodels-train`` from a checkout: see maskmodels/commands/train.py."""

from maskmodels.commands import train

if __name__ == "__main__":
  train.run()
