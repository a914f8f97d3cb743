import pytest
import torch
import torch.nn.functional as F
from clipbook.dense.windows import slide_inference, window_grid


def _mmseg_loop(images, predict, crop, stride):
    """mmseg's slide_inference, one window at a time, written out independently of the library."""
    n, _, h_img, w_img = images.shape
    preds, count = None, torch.zeros(1, 1, h_img, w_img)
    h_grids = max(h_img - crop[0] + stride[0] - 1, 0) // stride[0] + 1
    w_grids = max(w_img - crop[1] + stride[1] - 1, 0) // stride[1] + 1
    for i in range(h_grids):
        for j in range(w_grids):
            y1, x1 = i * stride[0], j * stride[1]
            y2, x2 = min(y1 + crop[0], h_img), min(x1 + crop[1], w_img)
            y1, x1 = max(y2 - crop[0], 0), max(x2 - crop[1], 0)
            out = predict(images[:, :, y1:y2, x1:x2])
            preds = torch.zeros(n, out.shape[1], h_img, w_img) if preds is None else preds
            preds[:, :, y1:y2, x1:x2] += out
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


def _position_dependent(crops):
    """A predictor whose output depends on where a pixel sits in its crop, so overlapping windows disagree."""
    h, w = crops.shape[-2:]
    ramp = torch.linspace(0, 1, h).view(1, 1, h, 1) + torch.linspace(0, 2, w).view(1, 1, 1, w)
    return torch.cat([crops.mean(1, keepdim=True) * ramp, F.avg_pool2d(crops, 3, 1, 1)[:, :2]], dim=1)


@pytest.mark.parametrize("size, crop, stride", [((20, 27), (8, 8), (5, 5)), ((16, 16), (16, 16), (8, 8)),
                                                ((10, 9), (12, 12), (4, 4)), ((33, 20), (7, 10), (7, 3))])
def test_slide_inference_equals_mmsegs_window_by_window_loop(size, crop, stride):
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    expected = _mmseg_loop(images, _position_dependent, crop, stride)
    torch.testing.assert_close(slide_inference(images, _position_dependent, crop, stride), expected)


def test_every_pixel_is_covered_and_windows_end_on_the_border():
    windows = window_grid((23, 31), (8, 8), (6, 6))
    covered = torch.zeros(23, 31)
    for y1, y2, x1, x2 in windows:
        assert y2 - y1 == 8 and x2 - x1 == 8
        covered[y1:y2, x1:x2] += 1
    assert covered.min() >= 1
    assert max(y2 for _, y2, _, _ in windows) == 23 and max(x2 for *_, x2 in windows) == 31


def test_a_pointwise_predictor_gives_back_its_own_map():
    images = torch.rand(1, 3, 13, 17)
    torch.testing.assert_close(slide_inference(images, lambda x: 2 * x, (6, 6), (4, 4)), 2 * images)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="positive"):
        window_grid((8, 8), (0, 4), (2, 2))
    with pytest.raises(ValueError, match="crop's size"):
        slide_inference(torch.rand(1, 3, 8, 8), lambda x: x[:, :, :2], (4, 4), (4, 4))
