"""Flips by subgroup: which counterfactual groups did compression change the answers of?

For the social tasks a single number hides where the damage lands. Per attribute the task names
(``Task.subgroups``: meta keys such as SocialCounterfactuals' ``a1``/``a2`` or the shapes world's
``shirt``/``hat``) and per value of it, this counts the items whose (normalised) answer changed
against fp16 and, when the items have references, how many went right→wrong and wrong→right with
McNemar's exact test on that subgroup's pairs. The worst-flipping items (right→wrong first, then
any change) are listed with both answers, so a reader can see what changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..metrics import mcnemar_p, normalize_answer

EXAMPLES = 5


def subgroup_flips(items: Sequence, base_answers: Sequence[str], answers: Sequence[str],
                   attributes: Sequence[str]) -> list[dict]:
    """One entry per (attribute, value): items, changed, right_to_wrong, wrong_to_right, p (McNemar;
    None without references) and up to ``EXAMPLES`` worst-flipping items."""
    before = [normalize_answer(a) for a in base_answers]
    after = [normalize_answer(a) for a in answers]
    graded = all(item.references for item in items)
    right = [[normalize_answer(r) for r in item.references] for item in items] if graded else None
    out = []
    for attribute in attributes:
        values = [str(item.meta.get(attribute, "")) for item in items]
        for value in dict.fromkeys(values):
            members = [i for i, v in enumerate(values) if v == value]
            changed = [i for i in members if before[i] != after[i]]
            entry = {"attribute": attribute, "value": value, "items": len(members), "changed": len(changed),
                     "right_to_wrong": None, "wrong_to_right": None, "p": None}
            worst = changed
            if graded:
                was = [before[i] in right[i] for i in members]
                now = [after[i] in right[i] for i in members]
                broke = [i for i, w, n in zip(members, was, now) if w and not n]
                entry.update(right_to_wrong=len(broke), wrong_to_right=sum(n and not w for w, n in zip(was, now)),
                             p=mcnemar_p(was, now))
                worst = broke + [i for i in changed if i not in broke]
            entry["examples"] = [{"id": str(items[i].id), "fp16": base_answers[i], "answer": answers[i]}
                                 for i in worst[:EXAMPLES]]
            out.append(entry)
    return out


def describe(entries: Sequence[dict]) -> str:
    """'shirt=orange 5/40 changed (3↓ 1↑, p 0.62); ...' for the report, subgroups with changes only."""
    parts = []
    for e in entries:
        if not e["changed"]:
            continue
        graded = "" if e["p"] is None else f" ({e['right_to_wrong']}↓ {e['wrong_to_right']}↑, p {e['p']:.2g})"
        parts.append(f"{e['attribute']}={e['value']} {e['changed']}/{e['items']} changed{graded}")
    return "; ".join(parts) or "no answer changed in any subgroup"


__all__ = ["EXAMPLES", "describe", "subgroup_flips"]
