"""Taint models as pooled-input rules, in exact integer arithmetic.

Every model has one shape::

    rule(input_values, input_taints, output_values, fee) -> (output_taints, fee_taint)

A transaction (UTXO) or an outgoing transfer from an account balance (account
chains, see :mod:`chainsleuth.flows.propagate`) pools what goes in and assigns
it to what comes out; the fee is an explicit extra slot after the outputs, so
taint paid to the miner is never silently lost. Amounts are integer base units
(satoshi, wei, token units); ``sum(input_values) == sum(output_values) + fee``.

References:

* Möser, Böhme, Breuker (2014), "Towards Risk Scoring of Bitcoin Transactions"
  (FC 2014 workshops): poison and haircut tainting.
* BlockSci (Kalodner et al. 2020), ``getPoisonTainted`` / ``getHaircutTainted``
  in ``blocksci/heuristics/taint.hpp``: the same two rules on coins.
* Anderson, Shumailov, Ahmed, Rietmann (2019), "Bitcoin Redux": FIFO by
  Clayton's rule (Devaynes v Noble, 1816), the rule English courts apply to a
  mixed account; LIFO is its mirror image, used as a bracket.

These pure-Python rules are the reference; the compiled propagation applies
the same rules and is tested against them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Rule = Callable[[Sequence[int], Sequence[int], Sequence[int], int], tuple[list[int], int]]

MODELS = ("haircut", "poison", "fifo", "lifo")


def _check(values_in: Sequence[int], taints_in: Sequence[int], values_out: Sequence[int], fee: int) -> None:
    if len(values_in) != len(taints_in):
        raise ValueError("one taint per input")
    if any(v < 0 for v in values_in) or any(v < 0 for v in values_out) or fee < 0:
        raise ValueError("negative amount")
    if any(not 0 <= t <= v for t, v in zip(taints_in, values_in, strict=True)):
        raise ValueError("taint outside [0, value]")
    if sum(values_in) != sum(values_out) + fee:
        raise ValueError("inputs must equal outputs plus fee")


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (Hamilton's method).

    Each share is ``floor(total * w / W)``; the units left over go one each to the
    largest remainders, ties to the lowest index, so the shares sum to ``total``.
    """
    wsum = sum(weights)
    if wsum == 0 or total == 0:
        return [0] * len(weights)
    shares = [total * w // wsum for w in weights]
    rems = [total * w % wsum for w in weights]
    left = total - sum(shares)
    for i in sorted(range(len(weights)), key=lambda k: (-rems[k], k))[:left]:
        shares[i] += 1
    return shares


def haircut(
    values_in: Sequence[int], taints_in: Sequence[int], values_out: Sequence[int], fee: int
) -> tuple[list[int], int]:
    """Haircut: every output (and the fee) carries the pool's tainted fraction.

    Möser et al. 2014; BlockSci ``getHaircutTainted``. Taint is conserved
    exactly (largest remainder). Over-attributes *breadth*: every recipient of a
    mixed pool is marked, with small shares; under-attributes *depth* per
    recipient: nobody gets the whole stolen amount even when a court would say
    the thief paid it to them. Shares shrink geometrically, so long traces fade
    below any ``min_value``.
    """
    _check(values_in, taints_in, values_out, fee)
    shares = largest_remainder(sum(taints_in), [*values_out, fee])
    return shares[:-1], shares[-1]


def poison(
    values_in: Sequence[int], taints_in: Sequence[int], values_out: Sequence[int], fee: int
) -> tuple[list[int], int]:
    """Poison: any taint in the pool taints all of every output.

    Möser et al. 2014; BlockSci ``getPoisonTainted``. Over-attributes: taint is
    *created* (a 1-satoshi tainted input marks a 100-BTC output), so the tainted
    set explodes after a few hops; it is an upper bound, never an amount to
    freeze. It never under-attributes.
    """
    _check(values_in, taints_in, values_out, fee)
    if sum(taints_in) == 0:
        return [0] * len(values_out), 0
    return list(values_out), fee


def _ordered(
    segments: Sequence[tuple[int, int]], values_out: Sequence[int], fee: int
) -> tuple[list[int], int]:
    """Pour (value, tainted) segments in order into the outputs, then the fee."""
    sinks = [*values_out, fee]
    out = [0] * len(sinks)
    k, room = 0, sinks[0] if sinks else 0
    for value, tainted in segments:
        while value > 0 and k < len(sinks):
            if room == 0:
                k += 1
                room = sinks[k] if k < len(sinks) else 0
                continue
            take = min(value, room)
            if tainted:
                out[k] += take
            value -= take
            room -= take
    return out[:-1], out[-1]


def _segments(values_in: Sequence[int], taints_in: Sequence[int]) -> list[tuple[int, int]]:
    # Within one coin or lot the tainted part comes first (see fifo's docstring).
    segs: list[tuple[int, int]] = []
    for v, t in zip(values_in, taints_in, strict=True):
        segs += [(t, 1), (v - t, 0)]
    return segs


def fifo(
    values_in: Sequence[int], taints_in: Sequence[int], values_out: Sequence[int], fee: int
) -> tuple[list[int], int]:
    """FIFO (first in, first out), Clayton's rule: the first unit in is the first out.

    Anderson et al. 2019. Inputs are taken in order (input index on UTXO
    chains, arrival order of lots on account chains) and poured into the
    outputs in order, then the fee. Inside one input the tainted part is taken
    first (an approximation on UTXO chains, where a coin keeps one taint amount,
    not its history). Taint is conserved exactly. Attributes whole amounts to
    few recipients, which matches how courts reason, but depends on an order
    that the sender chose: it can under-attribute to a recipient that a
    different (equally valid) order would have charged, and over-attribute to
    the first outputs.
    """
    _check(values_in, taints_in, values_out, fee)
    return _ordered(_segments(values_in, taints_in), values_out, fee)


def lifo(
    values_in: Sequence[int], taints_in: Sequence[int], values_out: Sequence[int], fee: int
) -> tuple[list[int], int]:
    """LIFO (last in, first out): the mirror of FIFO; the most recent unit in goes out first.

    Not a legal rule; the bracket to FIFO (Anderson et al. 2019 discuss both).
    Inputs are taken from the last one back; inside an input the tainted part is
    still taken first. Conserves taint; over- and under-attributes like FIFO but
    in the opposite order (recent deposits leave first, old balances stay).
    """
    _check(values_in, taints_in, values_out, fee)
    segs = _segments(list(reversed(values_in)), list(reversed(taints_in)))
    return _ordered(segs, values_out, fee)


RULES: dict[str, Rule] = {"haircut": haircut, "poison": poison, "fifo": fifo, "lifo": lifo}


def rule(model: str) -> Rule:
    """The rule of a model name; :class:`~chainsleuth.errors.ConfigError` for an unknown one."""
    from ..errors import ConfigError

    try:
        return RULES[model]
    except KeyError:
        raise ConfigError(f"unknown taint model {model!r}; choose one of {', '.join(MODELS)}") from None
