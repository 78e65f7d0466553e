"""``maskmodels-export`` from a checkout: see maskmodels/commands/export.py."""

from maskmodels.commands import export

if __name__ == "__main__":
  export.run()
