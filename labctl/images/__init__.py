"""Guest images: recipes, the offline builder, the local cache, downloads,
and the cloud-init NoCloud seed each VM boots with."""
