"""DistributedSync over a real two-process gloo group on 127.0.0.1 (what Ray Train's workers use)."""

import torch
import torch.multiprocessing as mp

from tests.conftest import free_port


def _worker(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    from cluster.train import DistributedSync

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        sync = DistributedSync(torch.device("cpu"))
        a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, 2, requires_grad=True)
        a.grad, b.grad = torch.full((3,), float(rank)), torch.full((2, 2), 2.0 * rank)
        agreed_bad = sync.gradients([a, b], ok=rank == 0)  # rank 1's window was not finite
        agreed_good = sync.gradients([a, b], ok=True)
        results[rank] = (agreed_bad, agreed_good, a.grad.tolist(), b.grad.tolist())
    finally:
        dist.destroy_process_group()


def test_gradients_are_averaged_and_the_window_flag_is_shared():
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(free_port(), results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        agreed_bad, agreed_good, a, b = results[rank]
        assert agreed_bad is False and agreed_good is True  # one exchange carries gradients and the flag
        assert a == [0.5] * 3 and b == [[1.0, 1.0], [1.0, 1.0]]  # the mean of ranks' (0, 1) and (0, 2)
