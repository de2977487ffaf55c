# Real Caffe for dfseg (see docs/caffe.md): CPU build with the Interp layer and the POP
# fork's schema, cached under ~/.cache/dfseg/caffe/<key> and linked at build/caffe.
.PHONY: caffe

# caffe/build.sh is a quick no-op when the cached install for the current sources exists.
caffe: setup
	bash caffe/build.sh build/caffe

# The Caffe-backed tests must run, never skip, wherever `make test` runs.
test: caffe
