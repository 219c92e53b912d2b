"""The synthetic omnichannel demo retailer, with ground truth for measuring identity resolution."""
