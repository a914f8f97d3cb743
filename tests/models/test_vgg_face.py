import pytest
import torch

from clipbook.models import vgg_face


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = vgg_face.VggFace().eval()
    path = tmp_path_factory.mktemp("vgg") / "vgg_face_dag.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_official_keys_and_shapes():
    state = vgg_face.VggFace().state_dict()
    convs = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, n + 1)]
    assert list(state) == [f"{m}.{p}" for m in [*convs, "fc6", "fc7", "fc8"] for p in ("weight", "bias")]
    assert state["fc6.weight"].shape == (4096, 25088) and state["fc8.weight"].shape == (2622, 4096)


def test_saved_state_dict_loads_back_to_identical_fc6_features(random_checkpoint):
    model, path = random_checkpoint
    loaded = vgg_face.load_vgg_face(str(path))
    images = torch.randn(2, 3, 224, 224) - 0.5
    with torch.no_grad():
        expected, got = model(images), loaded.model(images)
    assert got.shape == (2, 4096) and torch.equal(expected, got)
    assert loaded.identity["name"] == "vgg-face" and loaded.identity["weights"].startswith("vgg_face_dag.pth:")


def test_fc6_matches_a_torchvision_vgg16_with_the_same_weights(random_checkpoint):
    """An independent build of the architecture: torchvision's VGG-16 features + fc6, keys mapped."""
    torchvision = pytest.importorskip("torchvision")
    model, _ = random_checkpoint
    reference = torchvision.models.vgg16()
    convs = [m for m in reference.features if isinstance(m, torch.nn.Conv2d)]
    state = model.state_dict()
    for conv, name in zip(convs, [n for names in model.blocks for n in names]):
        conv.weight.data, conv.bias.data = state[f"{name}.weight"], state[f"{name}.bias"]
    reference.classifier[0].weight.data, reference.classifier[0].bias.data = state["fc6.weight"], state["fc6.bias"]
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fc6 = torch.relu(reference.classifier[0](reference.avgpool(reference.features(images)).flatten(1)))
        assert torch.allclose(model(images), fc6, atol=1e-4)


def test_missing_and_mismatched_checkpoints_fail_in_one_line(tmp_path, random_checkpoint):
    with pytest.raises(vgg_face.MissingBackboneError, match="hf_hub_download.*backbone_weights"):
        vgg_face.load_vgg_face(str(tmp_path / "absent.pth"))
    model, _ = random_checkpoint
    state = {k.replace("conv1_1", "features.0"): v for k, v in model.state_dict().items()}
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(vgg_face.BadCheckpointError, match="missing: conv1_1.bias") as error:
        vgg_face.load_vgg_face(str(wrong))
    assert "\n" not in str(error.value)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(vgg_face.BadCheckpointError, match="could not be read"):
        vgg_face.load_vgg_face(str(corrupt))


def test_finetuned_parameters_are_conv5_and_fc6():
    model = vgg_face.VggFace()
    trainable = vgg_face.set_finetuned(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names == list(vgg_face.FINETUNE_PARAMS) and len(trainable) == 8


def test_preprocess_subtracts_pixel_means_from_unit_range_values():
    from PIL import Image

    image = Image.new("RGB", (60, 40), (255, 0, 255))
    tensor = vgg_face.preprocess()(image)
    assert tensor.shape == (3, 224, 224)
    assert torch.allclose(tensor[:, 100, 100], torch.tensor([1 - 129.186279296875, -104.76238250732422,
                                                              1 - 93.59396362304688]), atol=1e-3)
