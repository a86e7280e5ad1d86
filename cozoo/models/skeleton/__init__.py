"""The skeleton family: continual spatio-temporal graph networks (CoST-GCN, CoA-GCN, CoS-TR and
their stride-one "mod" forms) and the regular networks they share weights with."""
