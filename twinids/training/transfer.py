"""Transfer (MAS): a detector net pre-trained on a public source, adapted, partly frozen, then fine-tuned.

The source is a training run (MLflow run id) or its checkpoint. Its net is rebuilt with the source's own
architecture and weights; when this data's features differ, a linear input adapter (trained here) maps
them to the source's input width; when the classes differ, the head is replaced. The parts named in
`transfer.freeze` stop requiring gradients before the detector is made private, so only trainable
parameters reach the (DP) optimiser: frozen ones cost no privacy and no per-sample gradient work.

What the fine-tuned checkpoint's architecture needs is recorded in `cfg.transfer.plan`, so evaluating it
later rebuilds the same net without fetching the source again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from twinids.errors import TwinIDSError

PART_ALIASES = {"encoder": "lstm"}  # the recurrent encoder of every twinids net is its `lstm` part
ADAPTER_MODES = ("auto", "always", "never")


def transferred_net(cfg: DictConfig, data: Any) -> tuple[nn.Module, dict[str, Any] | None]:
    """The net to fine-tune, and the source's config (to log) when the source was read now.

    With `cfg.transfer.plan` already set (a fine-tuned checkpoint being evaluated) only the architecture is
    rebuilt; otherwise the source is read, checked, planned into `cfg.transfer.plan`, and its weights loaded.
    """
    if cfg.transfer.plan is not None:
        return _skeleton(OmegaConf.to_container(cfg.transfer.plan), data), None
    source_config, net_state = _read_source(str(cfg.transfer.source), cfg.tracking.uri)
    if source_config["data"]["name"] == cfg.data.name:  # across datasets the adapter maps one feature set to another
        from twinids.data.views import check_same_view

        check_same_view(source_config["data"], cfg.data, f"transfer.source run {source_config['run_id']}")
    plan = _plan(cfg, data, source_config)
    net = _build_source_net(plan)
    net.load_state_dict(net_state)
    net = _fit_to(net, plan, data)
    freeze(net, list(plan["freeze"]))
    cfg.transfer.plan = plan
    return net, source_config


def freeze(net: nn.Module, parts: list[str]) -> None:
    """Stop the named parts of a net (top-level parts, `encoder` = the LSTM) from requiring gradients."""
    inner = net.net if hasattr(net, "adapter") else net
    available = {name for name, _ in inner.named_children()} | set(PART_ALIASES)
    for part in parts:
        name = PART_ALIASES.get(part, part)
        if part not in available or not hasattr(inner, name):
            raise TwinIDSError(
                f"transfer.freeze names '{part}', which this net does not have; parts: {', '.join(sorted(available))}"
            )
        for parameter in getattr(inner, name).parameters():
            parameter.requires_grad_(False)


def _read_source(source: str, tracking_uri: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The source's stored config and its net's weights, from a checkpoint path or a run id."""
    from twinids.tracking.queries import download_checkpoint
    from twinids.tracking.run import temporary_directory
    from twinids.training.checkpoint_io import load_torch_checkpoint, read_card
    from twinids.training.detector import detector_class

    path = Path(source)
    with temporary_directory() as scratch:
        if not path.is_file():
            if path.suffix:
                raise TwinIDSError(f"transfer.source: checkpoint not found: {path}")
            try:
                path = download_checkpoint(source, Path(scratch), tracking_uri)
            except TwinIDSError as error:
                raise TwinIDSError(f"transfer.source: {error}") from None
        card = read_card(path)
        model = card.config.get("model", {})
        supports = detector_class(model).supports
        if not supports.transfer:
            raise TwinIDSError(
                f"transfer.source {source} is a {model.get('name')} model, which has no weights to transfer: "
                "only neural detectors can be fine-tuned"
            )
        checkpoint = load_torch_checkpoint(path)
    net_state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    if card.privacy is not None:
        raise TwinIDSError(
            f"transfer.source {source} was trained with privacy=dp; pre-train on data treated as public "
            "(privacy=none), so that its privacy is not spent twice"
        )
    source = {**card.config, "run_id": card.run_id, "features": card.feature_names, "classes": card.class_names}
    return source, net_state


def _plan(cfg: DictConfig, data: Any, source: dict[str, Any]) -> dict[str, Any]:
    """What the fine-tuned net is made of: the source architecture, adapter and head decisions, frozen parts."""
    model = source["model"]
    net_config = model.get("module", {}).get("net")
    if net_config is None:
        raise TwinIDSError(f"transfer.source run {source['run_id']} is not a neural detector; it cannot be fine-tuned")
    if (source.get("transfer") or {}).get("plan") is not None:
        raise TwinIDSError(f"transfer.source run {source['run_id']} is itself fine-tuned; use its pre-training run")
    wanted = cfg.model.module.net._target_
    if net_config["_target_"] != wanted:
        raise TwinIDSError(
            f"transfer.source run {source['run_id']} is a {model['name']} ({net_config['_target_']}), but "
            f"model={cfg.model.name} builds {wanted}; fine-tune with model={model['name']}"
        )
    mode = str(cfg.transfer.adapter)
    if mode not in ADAPTER_MODES:
        raise TwinIDSError(f"transfer.adapter must be one of {', '.join(ADAPTER_MODES)}; got '{mode}'")
    same_features = list(source["features"]) == list(data.feature_names)
    if mode == "never" and not same_features:
        raise TwinIDSError(
            f"transfer.adapter=never, but this data has {data.n_features} features "
            f"and the source {len(source['features'])} (or others): use transfer.adapter=auto"
        )
    return {
        "source": str(cfg.transfer.source),
        "source_run_id": source["run_id"],
        "source_model": model["name"],
        "net": net_config,
        "source_features": len(source["features"]),
        "source_classes": len(source["classes"]),
        "adapter": mode == "always" or not same_features,
        "new_head": list(source["classes"]) != list(data.class_names),
        "freeze": [str(part) for part in cfg.transfer.freeze],
    }


def _build_source_net(plan: dict[str, Any]) -> nn.Module:
    from twinids.models.build import build_net

    what = f"the source's net ({plan['source_model']})"
    return build_net(OmegaConf.create(plan["net"]), what, plan["source_features"], plan["source_classes"])


def _fit_to(net: nn.Module, plan: dict[str, Any], data: Any) -> nn.Module:
    """Replace the head for other classes and put an input adapter in front for other features."""
    if plan["new_head"]:
        if not isinstance(getattr(net, "head", None), nn.Linear):
            raise TwinIDSError("the source net has no linear `head` to replace for this data's classes")
        net.head = nn.Linear(net.head.in_features, len(data.class_names))
    if plan["adapter"]:
        from twinids.models.adapter import InputAdapter

        net = InputAdapter(net, data.n_features, plan["source_features"])
    return net


def _skeleton(plan: dict[str, Any], data: Any) -> nn.Module:
    """The fine-tuned net's architecture (weights come from its own checkpoint)."""
    net = _fit_to(_build_source_net(plan), plan, data)
    freeze(net, list(plan["freeze"]))
    return net
