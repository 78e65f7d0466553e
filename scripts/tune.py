"""``maskmodels-tune`` from a checkout: see maskmodels/commands/tune.py."""

from maskmodels.commands import tune

if __name__ == "__main__":
  tune.run()
