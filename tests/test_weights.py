"""The importer of the released graphs, checked against the graph itself executed op by op."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from falsr.errors import UserError
from falsr.space.network import build_network
from falsr.weights import load_weights, save_weights
from falsr.weights.model import build_model
from falsr.weights.tf_graph import TFGraph
from falsr.weights.tf_import import PREFIX, import_graph


def run_graph(graph: TFGraph, feeds: dict[str, np.ndarray], fetch: str) -> np.ndarray:
    """A tiny reference interpreter of the 17 op types in the released graphs (NHWC, float64).

    Independent of our network builder: it follows the graph's own wiring and TensorFlow's op
    definitions, so agreement with FALSRNet + imported weights checks the whole import.
    """
    cache: dict[str, list[np.ndarray]] = {}

    def conv(x, w, groups=1):  # NHWC x, OIHW-ready weight; stride 1, 'SAME' (odd kernels)
        t = F.conv2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w), padding=w.shape[-1] // 2, groups=groups
        )
        return t.permute(0, 2, 3, 1).numpy()

    def value(ref: str) -> np.ndarray:
        name, _, idx = ref.partition(":")
        return outputs(name)[int(idx or 0)]

    def outputs(name: str) -> list[np.ndarray]:
        if name in cache:
            return cache[name]
        node = graph.nodes[name]
        ins = [value(r) for r in node.raw_inputs]
        op = node.op
        if op == "Placeholder":
            out = [feeds[name]]
        elif op == "Const":
            out = [graph.const(name).astype(np.float64) if graph.const(name).dtype == np.float32 else graph.const(name)]
        elif op == "Identity":
            out = [ins[0]]
        elif op == "Conv2D":
            out = [conv(ins[0], ins[1].transpose(3, 2, 0, 1).copy())]
        elif op == "DepthwiseConv2dNative":
            kh, kw, c, m = ins[1].shape
            out = [conv(ins[0], ins[1].reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None].copy(), groups=c)]
        elif op in ("BiasAdd", "Add"):
            out = [ins[0] + ins[1]]
        elif op == "Relu":
            out = [np.maximum(ins[0], 0)]
        elif op == "Mul":
            out = [ins[0] * ins[1]]
        elif op == "RealDiv":
            out = [ins[0] / ins[1]]
        elif op == "Maximum":
            out = [np.maximum(ins[0], ins[1])]
        elif op == "Minimum":
            out = [np.minimum(ins[0], ins[1])]
        elif op == "ConcatV2":
            out = [np.concatenate(ins[:-1], axis=int(ins[-1]))]
        elif op == "Split":
            out = np.split(ins[1], node.attr["num_split"].i, axis=int(ins[0]))
        elif op == "Shape":
            out = [np.array(ins[0].shape)]
        elif op == "Fill":
            out = [np.full(tuple(ins[0]), ins[1])]
        elif op == "DepthToSpace":
            b = node.attr["block_size"].i
            n, h, w, ch = ins[0].shape
            c = ch // (b * b)
            out = [ins[0].reshape(n, h, w, b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, c)]
        else:
            raise NotImplementedError(op)
        cache[name] = out
        return out

    return value(fetch)


@pytest.mark.parametrize("letter", "ABC")
def test_imported_network_equals_the_released_graph(letter, pretrained_dir):
    path = pretrained_dir / f"FALSR-{letter}.pb"
    graph = TFGraph(path)
    genome, sd = import_graph(path)
    net = build_network(genome)
    net.load_state_dict(sd)
    net = net.double().eval()
    rng = np.random.default_rng(0)
    y = rng.random((1, 9, 13, 1))
    feeds = {"input_image_evaluate_y": y, "input_image_evaluate_pbpr": rng.random((1, 18, 26, 2)) - 0.5}
    ref = run_graph(graph, feeds, PREFIX + "yout/BiasAdd")
    with torch.no_grad():
        ours = net(torch.from_numpy(y).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert ref.shape == ours.shape == (1, 18, 26, 1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def test_model_weights_loads_pb_pt_and_lightning_style_ckpt(pretrained_dir, tmp_path):
    pb = pretrained_dir / "FALSR-B.pb"
    net = build_model("150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1", weights=pb)
    saved = save_weights(net, tmp_path / "b.pt")
    again = build_model(str(net.genome), weights=saved)
    for key, value in net.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)
    # A Lightning checkpoint keeps the network under a prefix and the genome in hyper_parameters.
    ckpt = tmp_path / "b.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"genome": str(net.genome)},
        },
        ckpt,
    )
    third = build_model(str(net.genome), weights=ckpt)
    assert torch.equal(third.upsampler.out.weight, net.upsampler.out.weight)


def test_a_bare_weights_name_is_found_in_the_data_folder(pretrained_dir, tmp_path, monkeypatch):
    """model.weights=FALSR-B.pb (README) reads <data dir>/pretrained/FALSR-B.pb from any working directory."""
    monkeypatch.setenv("FALSR_DATA_DIR", str(pretrained_dir.parent))
    monkeypatch.chdir(tmp_path)
    genome = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"
    bare = build_model(genome, weights="FALSR-B.pb")
    full = build_model(genome, weights=pretrained_dir / "FALSR-B.pb")
    for key, value in full.state_dict().items():
        assert torch.equal(bare.state_dict()[key], value)
    (tmp_path / "FALSR-B.pb").write_bytes(b"not a graph")  # a file in the working directory comes first
    with pytest.raises(UserError):
        build_model(genome, weights="FALSR-B.pb")
    with pytest.raises(FileNotFoundError, match=r"weights file not found: FALSR-X.pb, nor .*pretrained/FALSR-X.pb"):
        build_model(genome, weights="FALSR-X.pb")


def test_weight_errors_are_clear(pretrained_dir, tmp_path):
    with pytest.raises(UserError, match="is for genome .* choose the matching model"):
        build_model("44.24.44.44.44.41.44-0001011_000001_11011_0001_001_11_1", weights=pretrained_dir / "FALSR-B.pb")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("1-1", weights=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt or not a PyTorch file"):
        load_weights(build_network("1-1"), bad)
    notes = tmp_path / "README.md"
    notes.write_text("not weights")
    with pytest.raises(UserError, match="unsupported weights file"):
        load_weights(build_network("1-1"), notes)
    other = save_weights(build_network("1-1"), tmp_path / "other.pt")
    with pytest.raises(UserError, match="is for genome 1-1"):
        load_weights(build_network("2-1"), other)


def test_weights_saved_in_another_space_load_by_their_cells(tmp_path):
    """A .pt names its space: a network found in a wider space loads in the paper's when its cells are in it."""
    from falsr.space.genome import FALSR_SPACE, SearchSpace, translate_genome, using_space

    b = "150.169.1.167.46.107.6-1100010_100011_01110_1000_101_00_1"
    with using_space(SearchSpace(channels=[16, 32, 48, 64, 96])):
        wide = translate_genome(b, FALSR_SPACE)  # FALSR-B's cells, indexed in the wider space
        wide_net = build_network(wide, init_std=None)
        saved = save_weights(wide_net, tmp_path / "wide.pt")
    assert wide != b
    net = build_model(b, weights=saved)  # the paper's indices, the same network
    for key, value in wide_net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
