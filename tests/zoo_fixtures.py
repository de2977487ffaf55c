"""Small-input test fixtures of well-known Caffe model-zoo nets, written from their published
architectures (layer types, widths, kernels, strides, pads; names in the zoo's style):

- AlexNet (BVLC bvlc_alexnet deploy: LRN after ReLU, grouped conv2/4/5, fc6-8 of 4096/4096/1000),
  old-style `input:` / `input_dim:`, at 67x67 (the smallest input that leaves pool5 1x1);
- GoogLeNet (bvlc_googlenet: LRN, nine Inception modules, 5x5 and pool-projection branches),
  Input layer, at 64x64; its last pooling averages the whole 2x2 map as 7x7 does at 224;
- FCN-8s-like (voc-fcn8s-atonce: VGG-16 layout with pad 100, fc6 as a 7x7 convolution, scaled
  pool3/pool4 scores, Deconvolution x2/x2/x8, Crop offsets 5/9/31, Eltwise sums) with VGG's
  widths divided by 8 (the 64x64 input becomes 262x262 behind pad 100), fed by a Data layer
  with labels and a loss, as a train/val file is;
- MobileNet V1 and V2 (shicai's MobileNet-Caffe: depthwise convolution as grouped
  Convolution, BatchNorm + Scale, ReLU, global average pooling, fc7 as 1x1 convolution),
  at 64x64;
- ResNet-50 (KaimingHe's deploy: conv1 with bias, BatchNorm + Scale, bottlenecks with the
  stride on branch2a, projection shortcuts), at 64x64, pool5 over the whole 2x2 map.
"""
from __future__ import annotations

from prototxt_gen import caffe_pb2

MAX, AVE = caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE


class Net:
    """A NetParameter grown layer by layer; every method returns the top it wrote."""

    def __init__(self, name: str):
        self.param = caffe_pb2.NetParameter(name=name)

    def layer(self, name, kind, bottoms, tops):
        return self.param.layer.add(name=name, type=kind, bottom=list(bottoms), top=list(tops))

    def input(self, shape, top="data"):
        self.layer("input", "Input", [], [top]).input_param.shape.add(dim=list(shape))
        return top

    def conv(self, name, bottom, num_output, kernel, stride=1, pad=0, group=1, bias=True,
             top=None, kind="Convolution"):
        layer = self.layer(name, kind, [bottom], [top or name])
        p = layer.convolution_param
        p.num_output, p.bias_term = num_output, bias
        p.kernel_size.append(kernel)
        if stride != 1:
            p.stride.append(stride)
        if pad:
            p.pad.append(pad)
        if group != 1:
            p.group = group
        return layer.top[0]

    def relu(self, name, blob):
        return self.layer(name, "ReLU", [blob], [blob]).top[0]

    def bn_scale(self, bn_name, scale_name, blob):
        self.layer(bn_name, "BatchNorm", [blob], [blob]).batch_norm_param.use_global_stats = True
        self.layer(scale_name, "Scale", [blob], [blob]).scale_param.bias_term = True
        return blob

    def pool(self, name, bottom, method, kernel=None, stride=1, pad=0, global_pooling=False):
        p = self.layer(name, "Pooling", [bottom], [name]).pooling_param
        p.pool = method
        if global_pooling:
            p.global_pooling = True
            return name
        p.kernel_size, p.stride = kernel, stride
        if pad:
            p.pad = pad
        return name

    def lrn(self, name, bottom):
        p = self.layer(name, "LRN", [bottom], [name]).lrn_param
        p.local_size, p.alpha, p.beta = 5, 1e-4, 0.75
        return name

    def fc(self, name, bottom, num_output):
        self.layer(name, "InnerProduct", [bottom], [name]).inner_product_param.num_output = num_output
        return name

    def dropout(self, name, blob, ratio):
        self.layer(name, "Dropout", [blob], [blob]).dropout_param.dropout_ratio = ratio
        return blob

    def eltwise_sum(self, name, bottoms):
        return self.layer(name, "Eltwise", bottoms, [name]).top[0]

    def concat(self, name, bottoms):
        return self.layer(name, "Concat", bottoms, [name]).top[0]

    def softmax(self, name, bottom):
        return self.layer(name, "Softmax", [bottom], [name]).top[0]


# ----------------------------------------------------------------------------- AlexNet

def alexnet(size: int = 67) -> caffe_pb2.NetParameter:
    n = Net("AlexNet")
    n.param.input.append("data")
    n.param.input_dim.extend([1, 3, size, size])
    x = n.relu("relu1", n.conv("conv1", "data", 96, 11, stride=4))
    x = n.pool("pool1", n.lrn("norm1", x), MAX, 3, 2)
    x = n.relu("relu2", n.conv("conv2", x, 256, 5, pad=2, group=2))
    x = n.pool("pool2", n.lrn("norm2", x), MAX, 3, 2)
    x = n.relu("relu3", n.conv("conv3", x, 384, 3, pad=1))
    x = n.relu("relu4", n.conv("conv4", x, 384, 3, pad=1, group=2))
    x = n.relu("relu5", n.conv("conv5", x, 256, 3, pad=1, group=2))
    x = n.pool("pool5", x, MAX, 3, 2)
    x = n.dropout("drop6", n.relu("relu6", n.fc("fc6", x, 4096)), 0.5)
    x = n.dropout("drop7", n.relu("relu7", n.fc("fc7", x, 4096)), 0.5)
    n.softmax("prob", n.fc("fc8", x, 1000))
    return n.param


# ----------------------------------------------------------------------------- GoogLeNet

#: (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection) of the paper's Table 1.
INCEPTIONS = [("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64), None,
              ("4a", 192, 96, 208, 16, 48, 64), ("4b", 160, 112, 224, 24, 64, 64),
              ("4c", 128, 128, 256, 24, 64, 64), ("4d", 112, 144, 288, 32, 64, 64),
              ("4e", 256, 160, 320, 32, 128, 128), None,
              ("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128)]


def _inception(n: Net, bottom, name, c1, r3, c3, r5, c5, proj):
    p = f"inception_{name}"
    b1 = n.relu(f"{p}/relu_1x1", n.conv(f"{p}/1x1", bottom, c1, 1))
    b3 = n.relu(f"{p}/relu_3x3_reduce", n.conv(f"{p}/3x3_reduce", bottom, r3, 1))
    b3 = n.relu(f"{p}/relu_3x3", n.conv(f"{p}/3x3", b3, c3, 3, pad=1))
    b5 = n.relu(f"{p}/relu_5x5_reduce", n.conv(f"{p}/5x5_reduce", bottom, r5, 1))
    b5 = n.relu(f"{p}/relu_5x5", n.conv(f"{p}/5x5", b5, c5, 5, pad=2))
    bp = n.pool(f"{p}/pool", bottom, MAX, 3, 1, pad=1)
    bp = n.relu(f"{p}/relu_pool_proj", n.conv(f"{p}/pool_proj", bp, proj, 1))
    return n.concat(f"{p}/output", [b1, b3, b5, bp])


def googlenet(size: int = 64) -> caffe_pb2.NetParameter:
    n = Net("GoogleNet")
    x = n.input((1, 3, size, size))
    x = n.relu("conv1/relu_7x7", n.conv("conv1/7x7_s2", x, 64, 7, stride=2, pad=3))
    x = n.lrn("pool1/norm1", n.pool("pool1/3x3_s2", x, MAX, 3, 2))
    x = n.relu("conv2/relu_3x3_reduce", n.conv("conv2/3x3_reduce", x, 64, 1))
    x = n.relu("conv2/relu_3x3", n.conv("conv2/3x3", x, 192, 3, pad=1))
    x = n.pool("pool2/3x3_s2", n.lrn("conv2/norm2", x), MAX, 3, 2)
    for i, spec in enumerate(INCEPTIONS):
        x = _inception(n, x, *spec) if spec else n.pool(f"pool{3 + i // 4}/3x3_s2", x, MAX, 3, 2)
    final = -(-size // 32)  # 7 at 224: the last pooling averages the whole map
    x = n.dropout("pool5/drop_7x7_s1", n.pool("pool5/7x7_s1", x, AVE, final, 1), 0.4)
    n.softmax("prob", n.fc("loss3/classifier", x, 1000))
    return n.param


# ----------------------------------------------------------------------------- FCN-8s

def _crop(n: Net, name, bottom, reference, offset):
    n.layer(name, "Crop", [bottom, reference], [name]).crop_param.offset.append(offset)
    return name


def _deconv(n: Net, name, bottom, classes, kernel, stride):
    return n.conv(name, bottom, classes, kernel, stride=stride, bias=False, kind="Deconvolution")


def fcn8s_like(width_divisor: int = 8, classes: int = 21) -> caffe_pb2.NetParameter:
    n = Net("FCN-8s-like")
    data = n.layer("data", "Data", [], ["data", "label"])
    data.data_param.source, data.data_param.batch_size = "voc_val_lmdb", 1
    x = "data"
    widths = [64, 128, 256, 512, 512]
    for stage, (width, convs) in enumerate(zip(widths, [2, 2, 3, 3, 3]), start=1):
        for i in range(1, convs + 1):
            name = f"conv{stage}_{i}"
            pad = 100 if name == "conv1_1" else 1
            x = n.relu(f"relu{stage}_{i}", n.conv(name, x, width // width_divisor, 3, pad=pad))
        x = n.pool(f"pool{stage}", x, MAX, 2, 2)
    x = n.dropout("drop6", n.relu("relu6", n.conv("fc6", x, 4096 // width_divisor, 7)), 0.5)
    x = n.dropout("drop7", n.relu("relu7", n.conv("fc7", x, 4096 // width_divisor, 1)), 0.5)
    up = _deconv(n, "upscore2", n.conv("score_fr", x, classes, 1), classes, 4, 2)
    fused = "upscore2"
    for pool, factor, offset in (("pool4", 0.01, 5), ("pool3", 0.0001, 9)):
        scaled = n.layer(f"scale_{pool}", "Scale", [pool], [f"scale_{pool}"])
        scaled.scale_param.filler.value = factor
        score = n.conv(f"score_{pool}", scaled.top[0], classes, 1)
        cropped = _crop(n, f"score_{pool}c", score, fused, offset)
        fused = n.eltwise_sum(f"fuse_{pool}", [fused, cropped])
        if pool == "pool4":
            fused = _deconv(n, "upscore_pool4", fused, classes, 4, 2)
    up = _deconv(n, "upscore8", fused, classes, 16, 8)
    score = _crop(n, "score", up, "data", 31)
    n.layer("loss", "SoftmaxWithLoss", [score, "label"], ["loss"])
    return n.param


# ----------------------------------------------------------------------------- MobileNets

def _conv_bn(n: Net, name, bottom, num_output, kernel, stride=1, group=1, relu=True):
    x = n.conv(name, bottom, num_output, kernel, stride=stride, pad=kernel // 2, group=group,
               bias=False)
    n.bn_scale(f"{name}/bn", f"{name}/scale", x)
    return n.relu(f"{name.replace('conv', 'relu', 1)}", x) if relu else x


def _classifier(n: Net, x):
    x = n.pool("pool6", x, AVE, global_pooling=True)
    n.softmax("prob", n.conv("fc7", x, 1000, 1))
    return n.param


#: MobileNet V1 separable blocks: (name, output channels, stride of the depthwise conv).
V1_BLOCKS = [("conv2_1", 64, 1), ("conv2_2", 128, 2), ("conv3_1", 128, 1), ("conv3_2", 256, 2),
             ("conv4_1", 256, 1), ("conv4_2", 512, 2)] + \
            [(f"conv5_{i}", 512, 1) for i in range(1, 6)] + [("conv5_6", 1024, 2),
                                                               ("conv6", 1024, 1)]


def mobilenet_v1(size: int = 64) -> caffe_pb2.NetParameter:
    n = Net("MOBILENET")
    x = _conv_bn(n, "conv1", n.input((1, 3, size, size)), 32, 3, stride=2)
    channels = 32
    for name, out, stride in V1_BLOCKS:
        x = _conv_bn(n, f"{name}/dw", x, channels, 3, stride=stride, group=channels)
        x = _conv_bn(n, f"{name}/sep", x, out, 1)
        channels = out
    return _classifier(n, x)


#: MobileNet V2 bottleneck stages (expansion t, channels c, repeats n, first stride s).
V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(size: int = 64) -> caffe_pb2.NetParameter:
    n = Net("MOBILENET_V2")
    x = _conv_bn(n, "conv1", n.input((1, 3, size, size)), 32, 3, stride=2)
    channels = 32
    for stage, (t, c, repeats, first_stride) in enumerate(V2_STAGES, start=2):
        for i in range(1, repeats + 1):
            name, stride = f"conv{stage}_{i}", first_stride if i == 1 else 1
            y = x if t == 1 else _conv_bn(n, f"{name}/expand", x, channels * t, 1)
            y = _conv_bn(n, f"{name}/dwise", y, channels * t, 3, stride=stride,
                         group=channels * t)
            y = _conv_bn(n, f"{name}/linear", y, c, 1, relu=False)
            if stride == 1 and channels == c:
                y = n.eltwise_sum(f"block_{stage}_{i}", [x, y])
            x, channels = y, c
    x = _conv_bn(n, "conv6_1", x, 1280, 1)  # 1x1 expansion before the pooling
    return _classifier(n, x)


# ----------------------------------------------------------------------------- ResNet-50

def _branch(n: Net, name, bottom, num_output, kernel, stride=1, relu=True):
    x = n.conv(f"res{name}", bottom, num_output, kernel, stride=stride, pad=kernel // 2,
               bias=False)
    n.bn_scale(f"bn{name}", f"scale{name}", x)
    return n.relu(f"res{name}_relu", x) if relu else x


def resnet50(size: int = 64) -> caffe_pb2.NetParameter:
    n = Net("ResNet-50")
    x = n.conv("conv1", n.input((1, 3, size, size)), 64, 7, stride=2, pad=3)
    x = n.relu("conv1_relu", n.bn_scale("bn_conv1", "scale_conv1", x))
    x = n.pool("pool1", x, MAX, 3, 2)
    for stage, (width, blocks) in enumerate(zip([64, 128, 256, 512], [3, 4, 6, 3]), start=2):
        for b in range(blocks):
            unit = f"{stage}{'abcdef'[b]}"
            stride = 2 if b == 0 and stage > 2 else 1
            shortcut = _branch(n, f"{unit}_branch1", x, 4 * width, 1, stride, relu=False) \
                if b == 0 else x
            y = _branch(n, f"{unit}_branch2a", x, width, 1, stride)
            y = _branch(n, f"{unit}_branch2b", y, width, 3)
            y = _branch(n, f"{unit}_branch2c", y, 4 * width, 1, relu=False)
            x = n.relu(f"res{unit}_relu", n.eltwise_sum(f"res{unit}", [shortcut, y]))
    x = n.pool("pool5", x, AVE, -(-size // 32), 1)
    n.softmax("prob", n.fc("fc1000", x, 1000))
    return n.param


FIXTURES = {
    "alexnet": (alexnet, None),
    "googlenet": (googlenet, None),
    "fcn8s": (fcn8s_like, (1, 3, 64, 64)),
    "mobilenet_v1": (mobilenet_v1, None),
    "mobilenet_v2": (mobilenet_v2, None),
    "resnet50": (resnet50, None),
}
