import sys,re,os,statistics
R=sys.argv[1]; tags=sys.argv[2:]
names=["square 256^3","square 512^3","square 1024^3","square 2048^3","fc1 forward (nt)","fc1 dW (tn)","fc1 dX (nn)","fc2 forward (nt)","fc2 dW (tn)","fc2 dX (nn)","fc3 forward (nt)","fc3 dW (tn)","fc3 dX (nn)"]
def np_(f):
    return [float(re.search(r"([\d.]+) GFLOP/s",l).group(1)) for l in open(f) if "GFLOP/s" in l and l.startswith(("matmul","mlp"))]
def kl(f):
    out=[]
    for l in open(f):
        if l.startswith(("matmul ","mlp ")) and "rules" in l or l.startswith(("matmul ","mlp ")) and "tuned" in l:
            p=l.split(); i=[j for j,x in enumerate(p) if re.match(r"^\d+x\d+x\d+$",x)][0]
            out.append((float(p[i+3]), " ".join(p[i+7:])))
    return out
def epoch(f, kiln):
    t=open(f).read()
    if kiln:
        m=re.search(r"Epoch seconds: ([\d., ]+)",t); v=[float(x) for x in m.group(1).split(",")]
    else:
        m=re.search(r"epoch seconds \[([^\]]+)\]",t); v=[float(x.strip(" '")) for x in m.group(1).split(",")]
    return statistics.mean(v[1:])
for tag in tags:
    rounds=sorted(set(int(m.group(1)) for f in os.listdir(R) for m in [re.search(rf"-{re.escape(tag)}-round(\d+)\.txt$",f)] if m))
    print("##",tag,"rounds",rounds)
    rows={}
    for r in rounds:
        fn=f"{R}/numpy-{tag}-round{r}.txt"; fk=f"{R}/kiln-products-{tag}-round{r}.txt"
        if os.path.exists(fn) and os.path.exists(fk):
            a=np_(fn); b=kl(fk)
            for i,n in enumerate(names):
                if i<len(a) and i<len(b): rows.setdefault(n,[]).append((b[i][0],a[i],b[i][1]))
    for n in names:
        if n in rows:
            v=rows[n]; rat=[k/o for k,o,_ in v]
            print(f"{n:18s} kiln {' / '.join('%.0f'%k for k,_,_ in v):24s} np {' / '.join('%.0f'%o for _,o,_ in v):24s} ratio {' / '.join('%.2f'%x for x in rat):28s} med {statistics.median(rat):.2f}  {v[-1][2]}")
    for w,k in [("mlp","mlp"),("bn","mlp-bn"),("cnn","cnn")]:
        for r in rounds:
            ft=f"{R}/torch-{k}-{tag}-round{r}.txt"; fk=f"{R}/kiln-{k}-{tag}-round{r}.txt"
            if os.path.exists(ft) and os.path.exists(fk):
                try:
                    a=epoch(ft,False); b=epoch(fk,True); print(f"{w:4s} round {r}: torch {a:.3f} kiln {b:.3f} ratio {b/a:.2f}")
                except Exception as e: print(w,r,"parse error",e)
