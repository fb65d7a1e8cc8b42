"""Deterministic hash-based train/eval splits for when only one input file is given."""

import hashlib

SPLITS = ("train", "eval")


def assign_split(key: str, eval_fraction: float, salt: str = "llm_tf") -> str:
    """Assigns an example to ``train`` or ``eval`` from a hash of its content.

    The same content always lands in the same split (across runs, machines and file
    orders), so duplicates never straddle the split.

    Args:
        key: The example's content key (see ``examples.example_key``).
        eval_fraction: Share of examples to put in ``eval``, in [0, 1).
        salt: Changes the assignment while keeping it deterministic.

    Returns:
        ``"train"`` or ``"eval"``.

    Example:
        >>> assign_split("a fine film", 0.1) in ("train", "eval")
        True
    """
    digest = hashlib.sha256(f"{salt}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    return "eval" if bucket < eval_fraction else "train"
