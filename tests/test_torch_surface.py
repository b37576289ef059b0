"""The PyTorch API surface that tutorial programs lean on: aliases, methods, helpers, inference_mode."""

import numpy as np
import pytest

import lamina


def test_dtype_aliases_and_type_names():
    assert (lamina.float, lamina.double, lamina.long, lamina.int) == (np.float32, np.float64, np.int64, np.int32)
    x = lamina.tensor([1.5, 2.5])
    assert x.type() == "lamina.FloatTensor" and x.long().type() == "lamina.LongTensor"
    assert x.int().dtype == np.int32 and x.type(lamina.double).dtype == np.float64
    assert "float" not in vars(__import__("lamina")).get("__all__", [])  # a star import keeps the builtins


def test_methods_and_formatting():
    x = lamina.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.mm(x.t()).tolist() == [[5.0, 11.0], [11.0, 25.0]]
    assert x.add(1, alpha=2).tolist() == [[3.0, 4.0], [5.0, 6.0]] and x.sub(x).sum().item() == 0
    assert x.mul(2).div(2).pow(2).tolist() == [[1.0, 4.0], [9.0, 16.0]]
    assert x.eq(2).tolist() == [[False, True], [False, False]] and x.gt(2).sum().item() == 2
    assert x.nelement() == x.numel() == 4 and x.contiguous() is x and x.view_as(lamina.zeros(4)).shape == (4,)
    assert f"{x.sum():.2f}" == "10.00" and [10, 20, 30][lamina.tensor(2)] == 30
    with pytest.raises(TypeError, match="only integer tensors of one element"):
        [1, 2][lamina.tensor(1.0)]
    with pytest.raises(ValueError, match="mm: both operands must be 2-D"):
        lamina.ones(2, 2, 2).mm(lamina.ones(2, 2))


def test_creation_helpers_and_inference_mode():
    lamina.manual_seed(3)
    p = lamina.randperm(6)
    assert sorted(p.tolist()) == list(range(6)) and p.dtype == np.int64
    x = lamina.ones(2, 3, dtype=lamina.float64, requires_grad=True)
    assert lamina.randn_like(x).dtype == np.float64 and lamina.rand_like(x).shape == (2, 3)
    with lamina.inference_mode():
        assert not (x * 2).requires_grad
    with lamina.inference_mode(False):
        assert (x * 2).requires_grad


def test_next_functions_show_the_graph():
    w = lamina.ones(2, requires_grad=True)
    y = (w * 2).sum()
    (mul, _), = y.grad_fn.next_functions
    assert mul.node_name == "MulBackward0" and repr(mul).startswith("<MulBackward0 object at 0x")
    (leaf, _), (constant, _) = mul.next_functions
    assert repr(leaf).startswith("<AccumulateGrad object at 0x") and leaf.variable is w and constant is None


def test_generators_and_multinomial():
    first = lamina.randn(4, generator=lamina.Generator().manual_seed(1)).tolist()
    assert first == lamina.randn(4, generator=lamina.Generator().manual_seed(1)).tolist()
    g = lamina.Generator().manual_seed(5)
    assert g.initial_seed() == 5 and lamina.randint(0, 10, (3,), generator=g).dtype == np.int64
    probs = lamina.tensor([[0.0, 0.2, 0.8], [1.0, 0.0, 0.0]])
    draws = lamina.multinomial(probs, 500, replacement=True, generator=lamina.Generator().manual_seed(0))
    assert draws.shape == (2, 500) and set(draws[1].tolist()) == {0}
    assert 0.7 < (draws[0] == 2).float().mean().item() < 0.9
    assert sorted(lamina.multinomial(lamina.ones(4), 4).tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="cannot draw 3 samples without replacement from 2"):
        lamina.multinomial(lamina.tensor([0.5, 0.5, 0.0]), 3)


def test_keyword_names_and_numpy_spellings_as_pytorch_takes_them():
    x = lamina.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert lamina.matmul(input=x, other=lamina.ones(3)).tolist() == [6.0, 15.0]
    assert lamina.add(input=x, other=1).sum().item() == 27
    # PyTorch's C++ functions take NumPy's axis= and keepdims= too; its Python ones (norm) do not
    assert x.sum(axis=1, keepdims=True).tolist() == [[6.0], [15.0]]
    assert lamina.mean(x, axis=0).tolist() == [2.5, 3.5, 4.5] and x.argmax(axis=1).tolist() == [2, 2]
    assert x.max(axis=1, keepdims=True).values.shape == (2, 1) and lamina.cat([x, x], axis=0).shape == (4, 3)
    with pytest.raises(TypeError, match="got both dim= and its NumPy spelling axis="):
        x.sum(dim=1, axis=1)
    with pytest.raises(TypeError, match="keepdims'; PyTorch spells it keepdim="):
        x.norm(dim=1, keepdims=True)
    with pytest.raises(TypeError, match="matmul\\(\\) got input= by keyword and also an argument in its place"):
        lamina.matmul(x, input=x)


def test_out_writes_into_the_given_tensor():
    x, y = lamina.ones(2, 2), lamina.full((2, 2), 3.0)
    out = lamina.zeros(2, 2)
    version = out._version if hasattr(out, "_version") else 0
    assert lamina.mul(x, y, out=out) is out and out.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert out._version == version + 1  # an in-place change, seen by ops that saved `out`
    lamina.matmul(x, y, out=out)
    assert out.tolist() == [[6.0, 6.0], [6.0, 6.0]]
    assert lamina.sum(y, 0, out=lamina.zeros(2)).tolist() == [6.0, 6.0]
    assert lamina.cat([x, y], 0, out=lamina.zeros(4, 2))[3].tolist() == [3.0, 3.0]
    w = lamina.ones(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        lamina.add(w, 1, out=lamina.zeros(2, 2))
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        lamina.add(x, 1, out=lamina.zeros(2, 2, requires_grad=True))
    with lamina.no_grad():
        assert lamina.add(w, 1, out=out).tolist() == [[2.0, 2.0], [2.0, 2.0]]
    with pytest.raises(RuntimeError, match="cannot be written in place into a int64 tensor"):
        lamina.add(x, 0.5, out=lamina.zeros(2, 2, dtype=lamina.int64))
    with pytest.raises(RuntimeError, match="shape"):
        lamina.add(x, 1, out=lamina.zeros(3))


def test_numpy_refuses_a_tensor_that_requires_grad():
    w = lamina.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad. "
                                           r"Use tensor.detach\(\).numpy\(\) instead."):
        w.numpy()
    assert w.detach().numpy().tolist() == [1.0, 1.0] and (w * 2).detach().numpy() is not None


def test_torch_utils_data_names_lamina_data():
    import lamina.utils.data

    assert lamina.utils.data is lamina.data and lamina.utils.data.DataLoader is lamina.data.DataLoader


def test_legacy_constructors_and_variable():
    from lamina.autograd import Variable

    assert lamina.Tensor([1, 2]).dtype == np.float32 and lamina.Tensor(2, 3).shape == (2, 3)  # PyTorch's Tensor()
    assert lamina.Tensor(1, 5).fill_(-1.0).tolist() == [[-1.0] * 5]
    assert lamina.LongTensor([1, 2]).dtype == np.int64 and lamina.FloatTensor(3).shape == (3,)
    base = lamina.ones(2, requires_grad=True) * 2
    v = Variable(base)  # shares memory, cut from the graph, a tensor like any other
    assert v.grad_fn is None and not v.requires_grad and isinstance(v, Variable) and isinstance(base, Variable)
    assert Variable(lamina.ones(2), requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="sizes must be ints"):
        lamina.Tensor(2, 3.5)


def test_narrow_new_and_mm():
    x = lamina.arange(12).reshape(3, 4).float()
    assert x.narrow(1, 1, 2).tolist() == [[1.0, 2.0], [5.0, 6.0], [9.0, 10.0]]
    with pytest.raises(IndexError, match="narrow: start 3 and length 2 do not fit dim 1 of size 4"):
        x.narrow(1, 3, 2)
    assert x.new_ones(2, 2).dtype == np.float32 and x.new_zeros((1, 3), dtype=lamina.float64).dtype == np.float64
    assert x.new_full((2,), 7.0).tolist() == [7.0, 7.0] and x.new_tensor([1, 2]).dtype == np.float32
    assert lamina.mm(x, x.t()).shape == (3, 3)


def test_softmax_without_dim_guesses_as_pytorch_does():
    x = lamina.randn(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax"):
        assert np.allclose(lamina.nn.functional.log_softmax(x).exp().sum(1).numpy(), 1)  # 2-D: dim 1
    with pytest.warns(UserWarning):
        assert np.allclose(lamina.nn.Softmax()(lamina.randn(2, 3, 4)).sum(0).numpy(), 1)  # 3-D: dim 0


def test_next_functions_list_the_tensor_first_for_reflected_operators():
    w = lamina.ones(2, requires_grad=True)
    d = 2 * w.sin() + 1  # as in PyTorch: MulBackward's first input is sin's output, the constant second
    (mul, _), (constant, _) = d.grad_fn.next_functions
    assert constant is None and mul.next_functions[0][0].node_name == "SinBackward0"


def test_summary_writer_takes_lamina_tensors(tmp_path):
    pytest.importorskip("tensorboardX")
    from lamina.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    writer.add_scalar("loss", lamina.tensor(0.5), 1)
    writer.add_scalars("both", {"train": lamina.tensor(0.5), "valid": 0.25}, 1)
    writer.close()
    assert any(tmp_path.rglob("events.out.tfevents.*"))


def test_layers_take_inplace_and_print_as_pytorch_does():
    nn = lamina.nn
    printed = [repr(m) for m in (nn.ReLU(True), nn.LeakyReLU(0.2, inplace=True), nn.ELU(), nn.Dropout(),
                                 nn.Dropout2d(0.1, True), nn.SiLU(inplace=True), nn.Flatten(0, 1))]
    assert printed == ["ReLU(inplace=True)", "LeakyReLU(negative_slope=0.2, inplace=True)", "ELU(alpha=1.0)",
                       "Dropout(p=0.5, inplace=False)", "Dropout2d(p=0.1, inplace=True)", "SiLU(inplace=True)",
                       "Flatten(start_dim=0, end_dim=1)"]
    x = lamina.tensor([-1.0, 2.0])
    assert nn.LeakyReLU(0.5, inplace=True)(x).tolist() == [-0.5, 2.0] and x.tolist() == [-1.0, 2.0]


def test_the_cpu_is_a_device_as_in_a_cpu_only_pytorch_build():
    """Programs pick a device with torch.cuda.is_available() and move everything there with .to(device)."""
    where = lamina.device("cuda" if lamina.cuda.is_available() else "cpu")
    assert where == "cpu" and where == lamina.device("cpu") and repr(where) == "device(type='cpu')"
    x = lamina.randn(2, 3, device=where)
    assert x.device == where and not x.is_cuda and x.cpu() is x
    assert x.to(where) is x and x.to("cpu", non_blocking=True) is x
    assert x.to(where, lamina.float64).dtype == np.float64
    assert x.to(lamina.zeros(1, dtype=lamina.int64)).dtype == np.int64
    model = lamina.nn.Linear(3, 2).to(where)
    assert model.weight.device == where and model.cpu() is model
    assert lamina.device("cuda:1").index == 1 and str(lamina.device("cuda", 0)) == "cuda:0"
    assert not lamina.accelerator.is_available() and not lamina.backends.mps.is_available()
    lamina.cuda.manual_seed_all(0)  # ignored without CUDA, as PyTorch ignores it
    lamina.set_default_device(where)
    assert lamina.get_default_device() == "cpu"


@pytest.mark.parametrize("call", [lambda: lamina.zeros(2, device="cuda"), lambda: lamina.ones(2).to("cuda:0"),
                                  lambda: lamina.ones(2).cuda(), lambda: lamina.nn.Linear(2, 2).to("cuda"),
                                  lambda: lamina.set_default_device("cuda")])
@pytest.mark.skipif(lamina.cuda.is_available(), reason="a GPU is usable here")
def test_a_gpu_device_without_cupy_or_a_gpu_is_refused_by_name_never_ignored(call):
    with pytest.raises(RuntimeError, match="device 'cuda(:0)?': (CUDA needs CuPy, which is not installed: pip "
                                           "install 'lamina\\[cuda\\]'|CuPy is installed but no CUDA GPU)"):
        call()
    with pytest.raises(ValueError, match="device: expected 'cpu' or 'cuda"):
        lamina.device("tpu")


def test_pytorch_module_paths_and_the_unpickling_allow_list():
    """torch.nn.modules.linear.Linear and torch.serialization.safe_globals, as programs name them around torch.load."""
    assert lamina.nn.modules.linear.Linear is lamina.nn.Linear
    assert lamina.nn.modules.rnn.LSTM is lamina.nn.LSTM and lamina.nn.modules.sparse.Embedding is lamina.nn.Embedding
    assert not lamina.ones(1).is_xpu and not lamina.ones(1).is_mps
    with lamina.serialization.safe_globals([lamina.nn.modules.linear.Linear]):
        pass  # lamina never unpickles: the allow-list has nothing to allow


def test_creation_functions_write_into_out():
    target = lamina.empty(2, 3)
    assert lamina.zeros(2, 3, out=target) is target and target.tolist() == [[0.0] * 3] * 2
    doubles = lamina.empty(4, dtype=lamina.float64)
    lamina.arange(4, out=doubles)  # out's dtype unless dtype= is given, as in PyTorch
    assert doubles.dtype == lamina.float64 and doubles.tolist() == [0.0, 1.0, 2.0, 3.0]
    lamina.manual_seed(0)
    drawn = lamina.randn(3)
    lamina.manual_seed(0)
    assert lamina.randn(3, out=lamina.empty(0)).tolist() == drawn.tolist()  # an empty out is resized
    with pytest.raises(RuntimeError, match=r"ones\(\): out= has shape lamina\.Size\(\[2\]\)"):
        lamina.ones(3, out=lamina.empty(2))
    with pytest.raises(RuntimeError, match="requires grad"):
        lamina.ones(2, out=lamina.empty(2, requires_grad=True))
    with pytest.raises(TypeError, match="zeros_like.*'out'"):
        lamina.zeros_like(target, out=target)


def test_legacy_tensor_constructor_is_always_the_default_float():
    ints = np.arange(3)
    assert lamina.Tensor(ints).dtype == np.float32 and lamina.Tensor(ints).tolist() == [0.0, 1.0, 2.0]
    assert lamina.Tensor(np.arange(3.0)).dtype == np.float32  # float64 arrays too, as torch.Tensor converts
    floats = np.zeros(2, np.float32)
    shared = lamina.Tensor(floats)
    floats[0] = 5  # a float32 array is shared, not copied
    assert shared.tolist() == [5.0, 0.0]
    doubles = lamina.ones(2, dtype=lamina.float64)
    assert lamina.Tensor(doubles).dtype == np.float64  # Tensor(t) shares t and keeps its dtype
    assert lamina.nn.Parameter(doubles).dtype == np.float64
    assert lamina.tensor(ints).dtype == np.int64 and lamina.from_numpy(ints).dtype == np.int64
