"""Pairwise precision/recall of a grouping."""

from accord.identity.evaluate import pairwise_score


def test_pairwise_score_counts_pairs() -> None:
    truth = {"a": "P1", "b": "P1", "c": "P1", "d": "P2", "e": "P2"}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    score = pairwise_score(predicted, truth)
    # predicted pairs: ab, cd -> 2; true pairs: ab ac bc de -> 4; correct: ab -> 1
    assert (score.predicted_pairs, score.true_pairs, score.correct_pairs) == (2, 4, 1)
    assert score.precision == 0.5 and score.recall == 0.25
    assert pairwise_score({"a": "x", "b": "x"}, {"a": "P", "b": "P"}).f1 == 1.0
    assert pairwise_score({}, {"a": "P", "b": "P"}).recall == 0.0
