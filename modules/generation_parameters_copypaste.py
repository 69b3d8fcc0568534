"""A1111 compatibility surface: the older name of ``modules.infotext_utils``."""

from modules.infotext_utils import *  # noqa: F401,F403
from modules.infotext_utils import ParamBinding, parse_generation_parameters, register_paste_params_button  # noqa: F401
