"""Replicates train.fit exactly, logging per-epoch loss, per-batch loss, and (diagnostic only) real-test AUROC."""
import sys, json, numpy as np, torch
from sklearn.metrics import roc_auc_score
from cardiosim.sim2real import train as T
T.set_threads()
nn=torch.nn
b = T.get_budget("full").for_task("af")
te=np.load("/tmp/af_diag/test.npz"); xte=te["x"]; yte=te["y"]
def evaluate(model, x):
    return T.predict(model, x, "cpu")
def bn_train_mode_pred(model, x):
    # BN batch statistics on the test set itself (diagnostic of running stats)
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Dropout): m.eval()
        p=torch.sigmoid(model(torch.as_tensor(x, dtype=torch.float32))).numpy()
    model.eval(); return p
cond=sys.argv[1]; seeds=[int(s) for s in sys.argv[2].split(",")]
epochs=int(sys.argv[3]) if len(sys.argv)>3 else b.epochs
lr=float(sys.argv[4]) if len(sys.argv)>4 else b.lr
out={}
for seed in seeds:
    d=np.load(f"/tmp/af_diag/{cond}_{seed}.npz"); x,y=d["x"],d["y"]
    model=T.make_model("af", 2, 2, b, seed)
    torch.manual_seed(seed); rng=np.random.default_rng(np.random.SeedSequence([seed, 99]))
    xt=torch.as_tensor(x); yt=torch.as_tensor(y)
    opt=torch.optim.Adam(model.parameters(), lr=lr)
    rec=[]
    for ep in range(epochs):
        model.train(); order=rng.permutation(len(xt)); losses=[]; gn=[]
        for i in range(0,len(order)-1,b.batch):
            idx=torch.as_tensor(order[i:i+b.batch])
            if len(idx)<2: continue
            xb,yb=xt[idx],yt[idx]; logits=model(xb); ok=torch.isfinite(yb)
            loss=nn.functional.binary_cross_entropy_with_logits(logits[ok],yb[ok])
            opt.zero_grad(); loss.backward()
            gn.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)))
            opt.step(); losses.append(float(loss))
        model.eval()
        ptr=evaluate(model,x); pte=evaluate(model,xte)
        pbn=bn_train_mode_pred(model,xte)
        r=dict(ep=ep+1, loss=np.mean(losses), loss_last=losses[-1], loss_max=max(losses), gmax=max(gn),
               tr_auc=roc_auc_score(y[:,0],ptr[:,0]), tr_eval_loss=float(nn.functional.binary_cross_entropy(torch.tensor(ptr[:,0]).clamp(1e-6,1-1e-6),torch.tensor(y[:,0]))),
               te_auc=roc_auc_score(yte,pte[:,0]), te_auc_bnbatch=roc_auc_score(yte,pbn[:,0]),
               te_pmean=float(pte[:,0].mean()), te_called=float((pte[:,0]>=.5).mean()), te_unread=float((pte[:,1]>=.5).mean()))
        rec.append(r)
        print(cond,seed," ".join(f"{k}={v:.3f}" if isinstance(v,float) else f"{k}={v}" for k,v in r.items()),flush=True)
    out[seed]=rec
    torch.save(model.state_dict(), f"/tmp/af_diag/model_{cond}_{seed}_e{epochs}_lr{lr}.pt")
json.dump(out,open(f"/tmp/af_diag/trace_{cond}_{sys.argv[2]}_e{epochs}_lr{lr}.json","w"),default=float)
