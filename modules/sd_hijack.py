"""A1111 compatibility surface: ``modules.sd_hijack.model_hijack``, minimal: the embedding
database fields extensions read (``word_embeddings``, ``skipped_embeddings``, each with ``name``,
``shape``, ``vectors``, ``filename``), filled from the bound Runtime's embeddings. Nothing is
hijacked: our text encoder applies embeddings itself."""

from __future__ import annotations

from modules import shared


class Embedding:
    """A1111's ``Embedding`` fields, from our ``EmbeddingInfo``."""

    def __init__(self, info):
        self.name = info.name
        self.vec = info.vectors
        self.shape = info.shape
        self.vectors = int(info.vectors.shape[0])
        self.step = info.step
        self.sd_checkpoint = info.sd_checkpoint
        self.sd_checkpoint_name = info.sd_checkpoint_name
        self.filename = str(info.path)
        self.hash = info.sha256
        self.shorthash = info.sha256[:10] if info.sha256 else None


class EmbeddingDatabase:
    def __init__(self) -> None:
        self.word_embeddings: dict[str, Embedding] = {}
        self.skipped_embeddings: dict[str, Embedding] = {}
        self.ids_lookup: dict = {}
        self.expected_shape = -1
        self.embedding_dirs: dict = {}

    def load_textual_inversion_embeddings(self, force_reload: bool = False, sync_with_sd_model: bool = True) -> None:
        """Re-reads the embeddings of the bound Runtime (none when unbound)."""
        runtime = shared.bound_runtime()
        if runtime is None:
            return
        found = runtime.embeddings(refresh=force_reload)
        self.word_embeddings = {name: Embedding(info) for name, info in found.loaded.items()}
        self.skipped_embeddings = {name: Embedding(info) for name, info in found.skipped.items()}
        self.embedding_dirs = {str(d): d for d in runtime.config.embeddings_dirs}


class StableDiffusionModelHijack:
    def __init__(self) -> None:
        self.embedding_db = EmbeddingDatabase()
        self.fixes = None
        self.layers = None
        self.circular_enabled = False
        self.clip = None
        self.optimization_method: str | None = None
        self.comments: list[str] = []
        self.extra_generation_params: dict = {}

    def hijack(self, m) -> None:
        self.embedding_db.load_textual_inversion_embeddings()

    def undo_hijack(self, m) -> None: ...

    def apply_optimizations(self, option=None) -> None: ...

    def clear_comments(self) -> None:
        self.comments = []
        self.extra_generation_params = {}

    def get_prompt_lengths(self, text: str):
        return 0, 75


model_hijack = StableDiffusionModelHijack()
