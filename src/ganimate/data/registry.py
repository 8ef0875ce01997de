"""The table of built-in image datasets: one `DatasetSpec` per name, and every list of dataset names derives from it.

Adding a dataset is one entry here (`register_dataset` at run time), plus a loader module when its files are
in a new format. An MNIST-format dataset (four IDX .gz files) needs only the entry.
"""

from __future__ import annotations

from ganimate.data import cifar, mnist, synthetic
from ganimate.data.download import DownloadSpec
from ganimate.data.spec import DatasetSpec
from ganimate.errors import DataError

FOLDER_PREFIX = "folder:"


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add `spec` to the table (names are lower case and may not start with "folder:")."""
    if spec.name != spec.name.strip().lower() or not spec.name or spec.name.startswith(FOLDER_PREFIX):
        raise ValueError(f"dataset name {spec.name!r} must be non-empty, lower case, and not start with "
                         f"{FOLDER_PREFIX!r}")
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    """The image dataset specs `ganimate train` accepts, as shown in messages."""
    return [*DATASETS, f"{FOLDER_PREFIX}PATH"]


def get_dataset(spec: str) -> DatasetSpec:
    """The table entry of built-in dataset `spec` (case and surrounding blanks ignored), or a one-line DataError."""
    entry = DATASETS.get(spec.strip().lower())
    if entry is None:
        raise DataError(f"unknown dataset {spec!r}: use one of {', '.join(dataset_names())}")
    return entry


register_dataset(DatasetSpec(
    "mnist", mnist.load, image_size=28, channels=1, num_classes=10, train_images=60_000,
    classes=tuple(str(k) for k in range(10)),
    source=DownloadSpec(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    reference_classifier=True,
))
register_dataset(DatasetSpec(
    "fashion-mnist", mnist.load, image_size=28, channels=1, num_classes=10, train_images=60_000,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    source=DownloadSpec(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    reference_classifier=True,
))
register_dataset(DatasetSpec(
    "cifar10", cifar.load, image_size=32, channels=3, num_classes=10, train_images=50_000,
    source=DownloadSpec(
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        md5={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    ),
))
register_dataset(DatasetSpec(
    "synthetic", synthetic.load, image_size=synthetic.SIZE, channels=1, num_classes=len(synthetic.CLASSES),
    train_images=synthetic.COUNT["train"],
))
