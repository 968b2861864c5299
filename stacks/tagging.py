"""TaggingAspect: merges default tags onto every taggable resource at synth."""

import jsii
from cdktf import IAspect, TerraformResource
from constructs import IConstruct


@jsii.implements(IAspect)
class TaggingAspect:
    """Gives every taggable resource below the scope it is added to ``tags``.

    Later dictionaries win: add the app-wide defaults merged with the stack's own
    tags. A resource's own tags win over both. Resources without a ``tags``
    argument (and data sources) are left alone.
    """

    def __init__(self, *tags: dict[str, str]) -> None:
        self.tags: dict[str, str] = {}
        for layer in tags:
            self.tags.update(layer)

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, TerraformResource) and hasattr(type(node), "tags_input"):
            node.tags = {**self.tags, **(node.tags_input or {})}
