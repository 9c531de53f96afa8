"""Minibatches of host arrays, shuffled reproducibly and moved to the training device."""
import numpy as np


class BatchLoader:
    """Iterate over minibatches of `data`, one epoch per `for batch in loader`.

    data: an array, or a tuple of arrays sharing the first axis, such as (images, labels);
        batches have the same structure.
    shuffle: draw a new order for each epoch from the loader's own seeded generator, so
        the sequence of batches depends only on `seed`.
    drop_last: skip the final batch when it would be smaller than `batch_size`.
    device: "cpu" or "gpu"; each batch is copied there (host data is never modified).

    `state_dict()` records the generator and the position in the current epoch;
    a new loader given it with `load_state_dict()` yields exactly the batches the old one
    would have yielded next, so a resumed training run sees the same data.
    """

    def __init__(self, data, batch_size, shuffle=True, drop_last=True, seed=0, device="cpu"):
        self.arrays = data if isinstance(data, tuple) else (data,)
        self._single = not isinstance(data, tuple)
        self.num_samples = len(self.arrays[0])
        if any(len(a) != self.num_samples for a in self.arrays):
            raise ValueError(f"arrays differ in length: {[len(a) for a in self.arrays]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if drop_last and batch_size > self.num_samples:
            raise ValueError(f"batch_size {batch_size} is larger than the {self.num_samples} samples: "
                             "with drop_last=True there would be no batch at all; use a smaller "
                             "batch_size or drop_last=False")
        self.batch_size, self.shuffle, self.drop_last, self.device = batch_size, shuffle, drop_last, device
        self.epoch = 0           # epochs begun
        self._rng = np.random.default_rng(seed)
        self._epoch_rng = None   # generator state before the current epoch's shuffle
        self._done = None        # batches yielded in the current epoch; None between epochs
        self._resume_at = 0      # batches to skip in the next epoch (set by load_state_dict)

    def __len__(self):
        """Batches per epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def __iter__(self):
        from ..backend import to_device
        self._epoch_rng = self._rng.bit_generator.state
        order = self._rng.permutation(self.num_samples) if self.shuffle else np.arange(self.num_samples)
        self.epoch += 1
        self._done, self._resume_at = self._resume_at, 0
        while self._done < len(self):
            index = order[self._done * self.batch_size:(self._done + 1) * self.batch_size]
            batch = tuple(to_device(a[index], self.device) for a in self.arrays)  # a[index] copies
            self._done += 1
            yield batch[0] if self._single else batch
        self._done = None

    def state_dict(self):
        """Where the batch sequence stands: generator state, epochs begun, batches done."""
        if self._done is not None and self._done < len(self):
            # mid-epoch: on resume, replay this epoch's shuffle and skip the batches already seen
            return {"rng": self._epoch_rng, "epoch": self.epoch - 1, "batch": self._done}
        return {"rng": self._rng.bit_generator.state, "epoch": self.epoch, "batch": 0}

    def load_state_dict(self, state):
        """Continue from `state`; the next iteration yields what the saved loader would have."""
        self._rng.bit_generator.state = state["rng"]
        self.epoch, self._resume_at, self._done = state["epoch"], state["batch"], None
