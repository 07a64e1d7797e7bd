"""timm's train.py cut to the calls that touch the model, made as train.py makes them (timm 1.0):
its flags `--pretrained --pretrained-path --in-chans --num-classes --drop --drop-path
--grad-checkpointing --model-kwargs --layer-decay`, then resolve_data_config, create_dataset,
create_loader, create_optimizer_v2 and one epoch on the CPU. train.py is not in timm's wheel; the
tests run this through `python -m srblock.run_timm` as a user runs train.py. It prints one JSON
line: what the model was built as, and its loss and top-1 after the epoch."""

import argparse
import json

import timm
import torch
from timm.data import create_dataset, create_loader, resolve_data_config
from timm.optim import create_optimizer_v2
from timm.utils import ParseKwargs

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--model", required=True)
parser.add_argument("--pretrained", action="store_true")
parser.add_argument("--pretrained-path", default=None)
parser.add_argument("--in-chans", type=int, default=None)
parser.add_argument("--input-size", type=int, nargs=3, default=None)
parser.add_argument("--num-classes", type=int, default=None)
parser.add_argument("--drop", type=float, default=0.0)
parser.add_argument("--drop-path", type=float, default=None)
parser.add_argument("--drop-block", type=float, default=None)
parser.add_argument("--grad-checkpointing", action="store_true")
parser.add_argument("--model-kwargs", nargs="*", default={}, action=ParseKwargs)
parser.add_argument("--layer-decay", type=float, default=None)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("-b", "--batch-size", type=int, default=16)


def main() -> None:
    args = parser.parse_args()
    torch.manual_seed(0)
    in_chans = 3  # as train.py decides it
    if args.in_chans is not None:
        in_chans = args.in_chans
    elif args.input_size is not None:
        in_chans = args.input_size[0]
    factory_kwargs = {}
    if args.pretrained_path:
        factory_kwargs["pretrained_cfg_overlay"] = dict(file=args.pretrained_path, num_classes=-1)
    model = timm.create_model(
        args.model,
        pretrained=args.pretrained,
        in_chans=in_chans,
        num_classes=args.num_classes,
        drop_rate=args.drop,
        drop_path_rate=args.drop_path,
        drop_block_rate=args.drop_block,
        global_pool=None,
        bn_momentum=None,
        bn_eps=None,
        scriptable=False,
        checkpoint_path="",
        **factory_kwargs,
        **args.model_kwargs,
    )
    if args.grad_checkpointing:
        model.set_grad_checkpointing(enable=True)
    first_conv = model.get_parameter(model.pretrained_cfg["first_conv"] + ".weight")
    built = {
        "in_chans": model.in_chans,
        "first_conv_sum": float(first_conv.detach().sum()),
        "drop_paths": [float(m.drop_prob) for m in model.modules() if type(m).__name__ == "DropPath"],
        "dropouts": [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0],
        "grad_checkpointing": model.grad_checkpointing,
    }
    data_config = resolve_data_config(vars(args), model=model)
    optimizer = create_optimizer_v2(
        model, opt="sgd", lr=args.lr, weight_decay=5e-4, momentum=0.9, layer_decay=args.layer_decay
    )
    built["lr_scales"] = sorted({round(g.get("lr_scale", 1.0), 6) for g in optimizer.param_groups})
    img_mode = "RGB" if data_config["input_size"][0] == 3 else "L"  # as train.py chooses it
    loaders = {}
    for split in ("train", "validation"):
        dataset = create_dataset(
            "", root=args.data_dir, split=split, is_training=split == "train", input_img_mode=img_mode
        )
        loaders[split] = create_loader(
            dataset,
            input_size=data_config["input_size"],
            batch_size=args.batch_size,
            is_training=split == "train",
            interpolation=data_config["interpolation"],
            mean=data_config["mean"],
            std=data_config["std"],
            crop_pct=data_config["crop_pct"],
            num_workers=0,
            use_prefetcher=False,
            device=torch.device("cpu"),
        )
    model.train()
    for images, labels in loaders["train"]:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loaders["validation"]:
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    print(
        json.dumps(
            {
                **built,
                "input_size": list(data_config["input_size"]),
                "loss": float(loss.detach()),
                "top1": 100 * correct / total,
            }
        )
    )


if __name__ == "__main__":
    main()
