import numpy as np, torch
from cardiosim.sim2real import train as T
from cardiosim.qrs import detect_r_peaks
T.set_threads()
b=T.get_budget("full").for_task("af")
te=np.load("/tmp/af_diag/test.npz"); xte=te["x"]; yte=te["y"]; g=te["groups"]
def feats(x):
    hr=[];cv=[];amp=[]
    for w in x:
        try: r=detect_r_peaks(w,100.0)
        except Exception: r=np.array([])
        rr=np.diff(r)/100.0
        hr.append(60/np.median(rr) if len(rr)>1 else np.nan); cv.append(np.std(np.diff(rr))/np.mean(rr) if len(rr)>2 else np.nan)
    return np.array(hr),np.array(cv)
hr,cv=feats(xte)
for gg in sorted(set(g)):
    for lab in (0,1):
        m=(g==gg)&(yte==lab)
        if m.any(): print(f"patient {gg} AF={lab} n={m.sum()} HR {np.nanmedian(hr[m]):.0f} [{np.nanpercentile(hr[m],10):.0f},{np.nanpercentile(hr[m],90):.0f}] RMSSD/mean {np.nanmedian(cv[m]):.3f}")
m=T.make_model("af",2,2,b,2); m.load_state_dict(torch.load("/tmp/af_diag/m_c_2_2_const6.pt")); p=T.predict(m,xte,"cpu")[:,0]
m3=T.make_model("af",2,2,b,3); m3.load_state_dict(torch.load("/tmp/af_diag/m_c_3_3_const6.pt")); p3=T.predict(m3,xte,"cpu")[:,0]
s=g=="21"
print("p21 seed2 model: corr(p,HR)=%.2f corr(p,cv)=%.2f"%(np.corrcoef(p[s],hr[s])[0,1], np.corrcoef(p[s][np.isfinite(cv[s])],cv[s][np.isfinite(cv[s])])[0,1]))
for cond in "c":
  for seed in (2,3):
    d=np.load(f"/tmp/af_diag/{cond}_{seed}.npz"); x,y=d["x"],d["y"]
    h,c=feats(x)
    for lab in (0,1):
        mm=y[:,0]==lab
        print(f"sim {cond}{seed} AF={lab} HR {np.nanmedian(h[mm]):.0f} [{np.nanpercentile(h[mm],10):.0f},{np.nanpercentile(h[mm],90):.0f}] cv {np.nanmedian(c[mm]):.3f}  sd lead I/II {np.median(x[mm].std(-1),0).round(3)}")
print("real sd lead I/II: p21", np.median(xte[s].std(-1),0).round(3), "others sinus", np.median(xte[(~s)&(yte==0)].std(-1),0).round(3), "AF", np.median(xte[yte==1].std(-1),0).round(3))
