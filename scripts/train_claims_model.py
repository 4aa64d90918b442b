"""Train the demo's insurance-claim decision model (mm_feast/decision_models/claims/) on synthetic
claims (mm_feast.synthetic_claims) and report its accuracy on freshly generated held-out claims.

    .venv/bin/python scripts/train_claims_model.py [--train 240] [--test 80] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from tqdm import tqdm

from mm_feast.services.claims import MODEL_DIR, DecisionModel, embed_claim, pooled_inputs, train
from mm_feast.synthetic_claims import write_claims


def embedded(claims: list, desc: str) -> list:
    return [embed_claim(c.picture, c.text, c.call) for c in tqdm(claims, desc=desc, unit="claim")]


def accuracy(model: DecisionModel, features: list, claims: list) -> float:
    right = sum((model.reject_probability(pooled_inputs(f, model)) >= 0.5) == c.rejected for f, c in zip(features, claims))
    return right / len(claims)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--test", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        train_claims = write_claims(Path(tmp) / "train", args.train, seed=args.seed)
        test_claims = write_claims(Path(tmp) / "test", args.test, seed=args.seed + 1)
        train_features, test_features = embedded(train_claims, "train"), embedded(test_claims, "held-out")
    model = train(train_features, [c.rejected for c in train_claims])
    train_acc, test_acc = accuracy(model, train_features, train_claims), accuracy(model, test_features, test_claims)
    model.save(args.out, {"train_claims": args.train, "held_out_claims": args.test, "seed": args.seed,
                          "train_accuracy": round(train_acc, 4), "held_out_accuracy": round(test_acc, 4),
                          "rule": "reject when 1.2*damage + 1.0*inconsistent_text + 0.6*stressed_call - 1.5 > 0"})
    print(f"trained on {args.train} claims: accuracy {train_acc:.3f}; on {args.test} held-out claims: {test_acc:.3f}; saved to {args.out}")


if __name__ == "__main__":
    main()
