"""Fig. 6 rewards and the REINFORCE advantage (leave-one-out baseline)."""
from neural_ae.core.personalized.rewards import advantage, reinforce_loss, reward
import pytest
import torch


def test_reward_table_of_fig6():
    back = torch.zeros(6)
    action = torch.tensor([0.05, 0.3, -0.3, 0.3, -0.3, 0.0])
    code = torch.tensor([0.0, 0.0, -1.0, -1.0, 1.0, 1.0])
    assert reward(code, action, back).tolist() == [1.0, -1.0, -1.0, 0.0, 0.0, -1.0]


def test_leave_one_out_advantage_is_zero_when_every_action_scores_the_same():
    r = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [1.0, -1.0, -1.0, -1.0]])
    adv = advantage(r)
    assert torch.equal(adv[0], torch.zeros(4))
    assert adv[1, 0] == pytest.approx(2.0) and adv[1, 1] == pytest.approx(-2.0 / 3.0)
    assert torch.equal(advantage(r, 'none'), r)
    with pytest.raises(ValueError, match='baseline'):
        advantage(r, 'mean')
    with pytest.raises(ValueError, match=r'\(B, K\)'):
        advantage(r[0])


def test_the_baselined_gradient_points_to_the_rewarded_side():
    # "under" original at Y = 0: actions <= 0 get -1, the others are unknown (0); with the
    # baseline the mean moves up, without it (all known rewards -1) it moves away from
    # the sampled actions below 0, also up, but noisier.
    mean = torch.zeros(1, 1, requires_grad=True)
    action = torch.tensor([[-0.15, -0.05, 0.05, 0.15]])
    r = reward(torch.full((1, 4), -1.0), action, torch.zeros(1, 4))
    loss = torch.mean(advantage(r) * (mean - action) ** 2) / (2 * 0.1 ** 2)
    loss.backward()
    assert float(mean.grad) < 0               # descent increases the mean
    mean.grad = None
    reinforce_loss(mean, action, r).backward()
    assert float(mean.grad) < 0
