from .config import add_clipnet_config, add_clipnet_video_config
from .model import ClipNet
