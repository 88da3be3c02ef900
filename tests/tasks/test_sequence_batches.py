"""sequence_classification: dict inputs (BERT style) train and evaluate through the task."""

import torch
from torch import nn
from torch.utils.data import Dataset

from edgeslim.bench.accuracy import evaluate_model
from edgeslim.data import dataset_info, make_loader
from edgeslim.train.config import TrainConfig
from edgeslim.train.trainer import Trainer


class _Tokens(Dataset):
    """``({"input_ids", "attention_mask"}, label)``: label = whether token 7 occurs."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(8, 30, (n, 10), generator=g)
        self.y = (torch.rand(n, generator=g) < 0.5).long()
        self.ids[self.y == 1, 3] = 7
        self.mask = torch.ones_like(self.ids)
        self.mask[:, 8:] = 0  # padding: ignored by the model

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}, self.y[i]


class _BagOfTokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(30, 16, mode="sum")
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(input_ids, per_sample_weights=attention_mask.float()))


def test_synthtext_declares_sequence_classification():
    assert dataset_info("synthtext").task == "sequence_classification"


def test_dict_inputs_train_and_evaluate():
    torch.manual_seed(0)
    model = _BagOfTokens()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.1, augment=False)
    trainer = Trainer(model, cfg, progress=False, task="sequence_classification")
    hist = trainer.fit(_Tokens(256, 0), _Tokens(64, 1))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] and hist[-1]["val_top1"] > 0.9
    res = evaluate_model(model, make_loader(_Tokens(64, 1), 16, shuffle=False), trainer.task)
    assert res["top1"] == hist[-1]["val_top1"] and res["n"] == 64
