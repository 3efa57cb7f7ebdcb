"""reference/lens.py: the logit lens, the heads picked by a measured habit, the stream's outliers.

The pages and `serve` show these as facts about the trained model, so each is checked against
a direct computation, and the trained model's measurements against what a random one gives.
"""

import pytest
import torch

from reference import WALKTHROUGH_PROMPT, lens
from reference.run import run_trace

CAPITAL = "The capital of France is"


@pytest.fixture(scope="module")
def capital(smollm2):
    tokens = smollm2.tokenizer.encode(CAPITAL, bos=True, eos=False)
    return run_trace(tokens, smollm2.weights, smollm2.args)


@pytest.fixture(scope="module")
def walk(smollm2):
    tokens = smollm2.tokenizer.encode(WALKTHROUGH_PROMPT, bos=True, eos=False)
    return run_trace(tokens, smollm2.weights, smollm2.args)


@pytest.fixture(scope="module")
def random_walk(tiny):
    tokens = tiny.tokenizer.encode(WALKTHROUGH_PROMPT, bos=True, eos=False)
    return run_trace(tokens, tiny.weights, tiny.args)


def test_the_lens_after_the_last_layer_is_the_models_own_prediction(smollm2, capital):
    probs = lens.logit_lens(capital, smollm2.weights, smollm2.args)
    assert probs.shape == (smollm2.args.n_layers, smollm2.args.vocab_size)
    torch.testing.assert_close(probs[-1], torch.softmax(capital["logits"][-1], dim=-1), rtol=1e-4, atol=1e-6)


def test_the_lens_at_an_earlier_position_reads_that_position(smollm2, capital):
    probs = lens.logit_lens(capital, smollm2.weights, smollm2.args, position=1)
    torch.testing.assert_close(probs[-1], torch.softmax(capital["logits"][1], dim=-1), rtol=1e-4, atol=1e-6)


def test_paris_wins_in_the_last_layer_and_not_before(smollm2, capital):
    probs = lens.logit_lens(capital, smollm2.weights, smollm2.args)
    paris = int(capital["next_token"])
    assert smollm2.tokenizer.decode([paris]) == " Paris"
    won = lens.first_layer_on_top(probs, paris)
    assert won is not None and all(int(probs[i].argmax()) == paris for i in range(won, len(probs)))
    assert won == 0 or int(probs[won - 1].argmax()) != paris


def test_first_layer_on_top_needs_the_token_to_stay_on_top():
    probs = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])  # token 1 on top at 0, 2, 3
    assert lens.first_layer_on_top(probs, 1) == 2
    assert lens.first_layer_on_top(probs, 0) is None


def test_habit_scores_are_the_mean_weight_on_the_previous_and_the_first_token(smollm2, walk):
    a = smollm2.args
    prev, first = lens.habit_scores(walk, a, "previous-token"), lens.habit_scores(walk, a, "first-token")
    T = walk["tokens"].numel()
    layer, head = 5, 2
    w = walk[f"layers.{layer}.attention_weights"][head]
    assert float(prev[layer, head]) == pytest.approx(sum(float(w[t, t - 1]) for t in range(2, T)) / (T - 2), rel=1e-5)
    assert float(first[layer, head]) == pytest.approx(sum(float(w[t, 0]) for t in range(2, T)) / (T - 2), rel=1e-5)


def test_the_strongest_head_is_the_argmax_over_every_layer_and_head(smollm2, walk):
    for criterion in lens.HEAD_CRITERIA:
        scores = lens.habit_scores(walk, smollm2.args, criterion)
        h = lens.strongest_head(walk, smollm2.args, criterion)
        assert h.score == float(scores.max()) == float(scores[h.layer, h.head])


def test_training_makes_heads_with_a_habit_and_random_weights_do_not(smollm2, walk, tiny, random_walk):
    T = random_walk["tokens"].numel()
    even = sum(1 / (t + 1) for t in range(2, T)) / (T - 2)  # attending evenly to the visible tokens
    for criterion in lens.HEAD_CRITERIA:
        assert lens.strongest_head(walk, smollm2.args, criterion).score > 0.6
        assert lens.strongest_head(random_walk, tiny.args, criterion).score < 2 * even


def test_outlier_dims_are_the_dimensions_ten_times_the_median():
    x = torch.ones(3, 4, 8)
    x[..., 5] = 11.0
    x[..., 2] = -9.0  # 9x: not an outlier
    assert lens.outlier_dims(x) == [5]


def test_the_trained_stream_has_outlier_dimensions_and_the_random_one_none(smollm2, walk, tiny, random_walk):
    assert lens.outlier_dims(lens.stream(walk, smollm2.args))
    assert lens.outlier_dims(lens.stream(random_walk, tiny.args)) == []


def test_score_by_distance_averages_each_diagonal(walk):
    s = walk["layers.3.scores"][1]
    by_distance = lens.score_by_distance(walk, 3, 1)
    assert float(by_distance[0]) == pytest.approx(float(torch.diagonal(s).mean()), rel=1e-6)
    assert float(by_distance[2]) == pytest.approx(float(torch.stack([s[t, t - 2] for t in range(2, len(s))]).mean()),
                                                  rel=1e-6)
