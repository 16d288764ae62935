"""cloudgate's AWS test ground: moto plus a VPC Lattice extension and an API call log."""
