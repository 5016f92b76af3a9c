"""Meta-SpikeFormer (SDT v2): exact counts with and without the KD head, RepConv padding, KD outputs, import."""

import pytest
import torch
import torch.nn.functional as F

import zoo
from model_checks import assert_trains_every_parameter
from official_reference import calibrate, load_references, official_logits_reproduced, seeded_state
from zoo.models.sdt_v2 import BNPad

# (without, with the distillation head): official classification/models.py with the paper's widths.
OFFICIAL_PARAMS = {
    "sdtv2_10_384.in1k": (15_112_208, 15_473_208),
    "sdtv2_10_512.in1k": (31_333_864, 31_814_864),
    "sdtv2_10_768.in1k": (55_350_248, 55_991_248),
}
REFERENCES = {k: v for k, v in load_references().items() if k.startswith("sdtv2")}



def test_registered_names_are_exactly_the_paper_rows():
    assert zoo.list_models("sdtv2*") == sorted(OFFICIAL_PARAMS)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
@pytest.mark.parametrize("kd", [False, True])
def test_parameter_count_matches_official_code(name, kd):
    with torch.device("meta"):
        model = zoo.create_model(name, kd=kd)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[name][kd]
    assert model.card.code_params == OFFICIAL_PARAMS[name][0] and model.card.recipe == "sdtv2_in1k"


@pytest.mark.parametrize("name", [
    "sdtv2_10_384.in1k",
    "sdtv2_10_512.in1k",
    "sdtv2_10_768.in1k",
])
def test_forward_backward_reaches_every_parameter(name):
    model = zoo.create_model(name, T=2).train()
    assert_trains_every_parameter(model, torch.randn(2, 3, 32, 32))


def test_kd_head_outputs_both_heads_in_training_and_their_average_in_eval():
    x = torch.randn(2, 3, 32, 32)
    model = zoo.create_model("sdtv2_10_384.in1k", T=2, kd=True).train()
    logits, kd_logits = model(x)
    assert logits.shape == kd_logits.shape == (2, 1000)
    (logits.sum() + kd_logits.sum()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    steps, kd_steps = model(x, per_step=True)
    assert steps.shape == kd_steps.shape == (2, 2, 1000)
    calibrate(model, x)
    with torch.no_grad():
        averaged = model(x)
        cls, kd = model.head_logits(x.unsqueeze(0).expand(2, *x.shape))
    torch.testing.assert_close(averaged, ((cls + kd) / 2).mean(0))
    assert not torch.allclose(cls, kd)


def test_bn_pad_border_is_the_bn_of_zero_in_eval_but_uses_running_stats_in_training():
    torch.manual_seed(0)
    bn = BNPad(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 5, 5)
    reference = torch.nn.BatchNorm2d(4).eval()
    reference.load_state_dict(bn.state_dict())
    torch.testing.assert_close(bn.eval()(x), reference(F.pad(x, [1, 1, 1, 1])))
    train_out = bn.train()(x)
    assert train_out.shape == (2, 4, 7, 7)
    fill = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(train_out[:, :, 0, 0], fill.detach().expand(2, 4))


def test_head_quirk_switch_changes_behaviour():
    x = torch.randn(2, 3, 32, 32)
    official = calibrate(zoo.create_model("sdtv2_10_384.in1k", T=2), x)
    paper = zoo.create_model("sdtv2_10_384.in1k", T=2, official_quirks=False)
    assert official.head.pool_then_neuron and not paper.head.pool_then_neuron
    paper.load_state_dict(official.state_dict())
    with torch.no_grad():
        assert not torch.allclose(official(x), paper.eval()(x))


def test_eval_is_deterministic_and_per_sample():
    torch.manual_seed(3)
    x = torch.randn(3, 3, 32, 32)
    model = calibrate(zoo.create_model("sdtv2_10_384.in1k", T=2), x)
    with torch.no_grad():
        first, again, alone = model(x), model(x), model(x[:1])
    assert torch.equal(first, again)
    assert (first[0] - first[1]).abs().max() > 1e-3
    torch.testing.assert_close(alone[0], first[0], rtol=0, atol=1e-5)


def test_wrong_input_shape_is_rejected():
    with torch.device("meta"):
        model = zoo.create_model("sdtv2_10_384.in1k")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.zeros(2, 4, 2, 3, 32, 32, device="meta"))
    with pytest.raises(ValueError, match="4 stage widths"):
        zoo.create_model("sdtv2_10_384.in1k", dims=(64, 128, 256))


@pytest.mark.parametrize("entry", sorted(REFERENCES))
def test_logits_reproduce_the_official_code(entry):
    """Seeded weights in the official layout give the official code's eval logits (to 1e-4)."""
    logits = official_logits_reproduced(REFERENCES[entry])
    assert torch.isfinite(logits).all()


def test_released_kd_checkpoint_layout_loads_only_with_the_kd_head():
    spec = REFERENCES["sdtv2_metaspikformer_8_512_kd"]
    state = seeded_state(spec["keys"])
    with torch.device("meta"):
        model = zoo.create_model(spec["zoo"], **spec["overrides"])
    checkpoint = {"model": state, "epoch": 49}  # how main_finetune.py saves it
    model = zoo.load_official_state_dict(model.to_empty(device="cpu"), checkpoint)
    ours = model.state_dict()
    key_map = model.official_key_map(list(state))
    assert all(v is not None for v in key_map.values())
    for official_key, our_key in key_map.items():
        assert torch.equal(ours[our_key], state[official_key].to(ours[our_key].dtype)), official_key
    with torch.device("meta"):
        without_kd = zoo.create_model(spec["zoo"])
    with pytest.raises(ValueError, match="head_kd"):
        zoo.load_official_state_dict(without_kd, state)


def test_event_frames_run_through_the_same_network():
    model = zoo.create_model("sdtv2_10_384.in1k", T=2, num_classes=10, in_channels=2, input_kind="dvs",
                             dims=(16, 32, 64, 80))
    logits = model(torch.rand(2, 2, 2, 32, 32))
    assert logits.shape == (2, 10)
    with pytest.raises(ValueError, match=r"\[B, T=2, 2, H, W\]"):
        model(torch.rand(2, 3, 32, 32))


def test_attention_block_counts_of_stages_3_and_4_are_configurable():
    with torch.device("meta"):
        default = zoo.create_model("sdtv2_10_384.in1k", dims=(16, 32, 64, 80))
        shrunk = zoo.create_model("sdtv2_10_384.in1k", dims=(16, 32, 64, 80), blocks=(1, 1))
    assert (len(default.blocks3), len(default.blocks4)) == (6, 2)  # the official class hard-codes 6 + 2
    assert (len(shrunk.blocks3), len(shrunk.blocks4)) == (1, 1)
    per_block = [sum(p.numel() for p in stage[0].parameters()) for stage in (default.blocks3, default.blocks4)]
    count = sum(p.numel() for p in shrunk.parameters())
    assert count == sum(p.numel() for p in default.parameters()) - 5 * per_block[0] - per_block[1]
    with pytest.raises(ValueError, match="2 attention block counts"):
        zoo.create_model("sdtv2_10_384.in1k", blocks=(1, 1, 1))
