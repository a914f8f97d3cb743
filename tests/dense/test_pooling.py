import pytest
import torch
from clipbook.dense.pooling import box_pool, mask_pool


def test_a_box_on_cell_borders_pools_exactly_its_cells():
    feature_map = torch.randn(1, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    # the image is 32 px, the map 8 cells: box (8, 4, 24, 12) px covers columns 2..5 and rows 1..2
    pooled = box_pool(feature_map, [torch.tensor([[8.0, 4.0, 24.0, 12.0]])], image_size=(32, 32))
    torch.testing.assert_close(pooled[0], feature_map[0, :, 1:3, 2:6].mean(dim=(1, 2)))


def test_boxes_of_several_images_stay_with_their_image():
    feature_map = torch.stack([torch.zeros(2, 4, 4), torch.ones(2, 4, 4)])
    boxes = [torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.tensor([[0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 4.0, 4.0]])]
    pooled = box_pool(feature_map, boxes, image_size=(4, 4))
    assert pooled.shape == (3, 2)
    assert pooled[0].abs().max() == 0 and torch.all(pooled[1:] == 1)


def test_mask_pool_equals_a_loop_over_cells():
    generator = torch.Generator().manual_seed(1)
    feature_map = torch.randn(2, 3, 4, 4, generator=generator)
    masks = (torch.rand(2, 2, 4, 4, generator=generator) > 0.5).float()
    pooled = mask_pool(feature_map, masks)
    for n in range(2):
        for k in range(2):
            cells = [feature_map[n, :, i, j] for i in range(4) for j in range(4) if masks[n, k, i, j]]
            torch.testing.assert_close(pooled[n, k], torch.stack(cells).mean(0))


def test_mask_pool_at_image_resolution_weighs_partly_covered_cells():
    feature_map = torch.tensor([[[[1.0, 3.0]]]])  # one channel, a 1×2 grid
    mask = torch.zeros(1, 1, 2, 4)
    mask[..., :3] = 1  # all of the left cell, half of the right one
    assert mask_pool(feature_map, mask).item() == pytest.approx((1.0 * 1 + 3.0 * 0.5) / 1.5)


def test_an_empty_mask_gives_zero_not_nan_and_bad_shapes_are_refused():
    assert torch.all(mask_pool(torch.randn(1, 3, 2, 2), torch.zeros(1, 1, 8, 8)) == 0)
    with pytest.raises(ValueError, match="N, K, H, W"):
        mask_pool(torch.randn(1, 3, 2, 2), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="one box tensor per image"):
        box_pool(torch.randn(2, 3, 2, 2), [torch.zeros(1, 4)], image_size=(8, 8))
