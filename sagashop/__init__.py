"""sagashop: an in-game item purchase saga, choreographed by six pykka actors over Redis."""
