"""``maskmodels-predict`` from a checkout: see maskmodels/commands/predict.py."""

from maskmodels.commands import predict

if __name__ == "__main__":
  predict.run()
