//! The control plane: health checks, VRRP, neighbour resolution, reload.
