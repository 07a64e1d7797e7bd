import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def fill_memory(model: torch.nn.Module, std: float = 1.0) -> None:
    """Gives every SR block a non-zero memory, as training would."""
    from srblock import sr_blocks

    with torch.no_grad():
        for _, block in sr_blocks(model):
            block.memory.normal_(0.0, std)
